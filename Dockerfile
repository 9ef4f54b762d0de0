# syntax=docker/dockerfile:1
# Image of the orchestrator: one image runs the scheduler service (`serve`) or a worker (`worker`),
# chosen by the command (docker-compose.yml). TypeScript runs as it is, through tsx (a runtime
# dependency); nothing is compiled, and the generated proto types are type-only, so not needed.
#
#   docker build -t moe-orchestrator .
#   docker run --rm moe-orchestrator --help

# Stage 1: the production dependencies, from the lock file only (cached until it changes).
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/scheduler/package.json apps/scheduler/
COPY apps/worker/package.json apps/worker/
COPY libs/comm/package.json libs/comm/
COPY libs/model/package.json libs/model/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Stage 2: the runtime: dependencies, then the sources (.dockerignore leaves out tests and builds).
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.base.json ./
COPY bin ./bin
COPY proto ./proto
COPY libs ./libs
COPY apps ./apps
# Reports of `serve` (a volume in compose), writable by the unprivileged user.
RUN mkdir -p /app/reports && chown node:node /app/reports
USER node
# 7000: the Scheduler gRPC service (serve); 7100: a worker's Worker and Peer services.
EXPOSE 7000 7100
ENTRYPOINT ["node", "bin/moe.mjs"]
CMD ["--help"]
