/** Where things are in the repository, resolved from this file (never from the caller's cwd). */
import { fileURLToPath } from 'node:url';

/** The repository root (holds package.json, node_modules, apps/, libs/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The worker process's entry point, run with `node --import tsx`. */
export const WORKER_MAIN = fileURLToPath(new URL('../../worker/src/main.ts', import.meta.url));

/** Preloaded into every worker process this scheduler starts: it exits when its parent dies. */
export const PARENT_GUARD = fileURLToPath(new URL('./control/parent-guard.mjs', import.meta.url));

/** `moe health`: plain JavaScript, run without tsx by bin/moe.mjs. */
export const HEALTH_MAIN = fileURLToPath(new URL('../../../bin/moe-health.mjs', import.meta.url));
