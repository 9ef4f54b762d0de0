# Image of the orchestrator: one image runs the scheduler service (`serve`) or a worker (`worker`),
# chosen by the command (docker-compose.yml). TypeScript runs as it is, through tsx (a runtime
# dependency); nothing is compiled, and the generated proto types are type-only, so not needed.
# No `# syntax=` line: that would make the build fetch a frontend image from a registry, and the
# file must build offline (with the base image already loaded) and behind a mirror.
#
#   docker build -t moe-orchestrator .
#   docker build --build-arg NODE_IMAGE=mirror.example:5000/library/node:20-bookworm-slim -t moe-orchestrator .
#   docker run --rm moe-orchestrator --help

# The base image of both stages: an air-gapped user points it at a mirror (compose: MOE_NODE_IMAGE).
ARG NODE_IMAGE=node:20-bookworm-slim

# Stage 1: the production dependencies, from the lock file and the workspaces' manifests only
# (cached until one of them changes). Every workspace of package.json must be listed here.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/scheduler/package.json apps/scheduler/
COPY apps/worker/package.json apps/worker/
COPY libs/comm/package.json libs/comm/
COPY libs/log/package.json libs/log/
COPY libs/model/package.json libs/model/
COPY libs/placement/package.json libs/placement/
COPY libs/report/package.json libs/report/
COPY libs/schedule/package.json libs/schedule/
COPY libs/sim/package.json libs/sim/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Stage 2: the runtime: dependencies, then the sources (.dockerignore leaves out tests and builds).
FROM ${NODE_IMAGE} AS runtime
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
# 7000: the Scheduler gRPC service (serve); 8080: the dashboard of serve; 7100: a worker's Worker and Peer services.
EXPOSE 7000 8080 7100
# --initial-old-space-size: the V8 flag every process that moves frames runs with (libs/comm
# DATA_PLANE_NODE_FLAGS: full collections every few MB otherwise halve the data plane's speed).
ENTRYPOINT ["node", "--initial-old-space-size=128", "bin/moe.mjs"]
CMD ["--help"]
