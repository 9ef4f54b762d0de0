# Multi-stage image of the orchestrator: one image runs the scheduler (`moe serve`) or a worker
# (`moe worker`), chosen by the command.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/scheduler/package.json apps/scheduler/
COPY apps/worker/package.json apps/worker/
COPY libs/comm/package.json libs/comm/
COPY libs/model/package.json libs/model/
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.base.json ./
COPY bin ./bin
COPY proto ./proto
COPY libs ./libs
COPY apps ./apps
USER node
ENTRYPOINT ["node", "bin/moe.mjs"]
CMD ["--help"]
