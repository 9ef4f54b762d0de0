#!/usr/bin/env node
// `moe`: the command line of the orchestrator (apps/scheduler/src/cli.ts), run through tsx so the
// TypeScript sources run as they are. `npx moe --help` from the repository root.
// `moe health` (docker healthchecks, every few seconds) is plain JavaScript: answered here,
// without loading tsx and the CLI.
if (process.argv[2] === 'health') {
  const { health } = await import('./moe-health.mjs');
  process.exit(await health(process.argv.slice(3)));
}
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../apps/scheduler/src/cli.ts');
const code = await main(process.argv.slice(2));
// A number: the command is done (exit even if a handle lingers). undefined: this process is now a worker.
if (typeof code === 'number') process.exit(code);
