/**
 * V8 flags for a process that moves frames: a worker, or a rank of the data plane benchmarks.
 *
 * Node starts with an old generation of a few MB. A process moving frames promotes a steady
 * stream of short-lived objects (frame views, mailbox entries, promises) into it, so V8 runs a
 * full mark-compact every few MB: measured with `--trace-gc` on the 4-process all-to-all of
 * 64 KiB frames (`libs/comm/bench/alltoall.bench.ts --kib 64 --mb 75 --planes socket`), 48
 * mark-compacts in 4 runs and 467 MB/s; with an initial old generation of 128 MB, none and
 * 957 MB/s. It halves the CPU per MB of raw TCP and of every data plane alike. The flag sets
 * where the first full collection happens, not memory taken up front. Node refuses it in
 * NODE_OPTIONS, so it goes on the command line of every process that moves frames.
 */
export const DATA_PLANE_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/**
 * `execArgv` for a forked child that runs TypeScript and moves frames: the parent's flags (with
 * its tsx loader, or tsx added) and DATA_PLANE_NODE_FLAGS (unless the parent already set them).
 */
export function dataPlaneChildExecArgv(): string[] {
  const parent = withoutScriptFlags(process.execArgv);
  const own = parent.some((a) => a.includes('tsx')) ? parent : [...parent, '--import', import.meta.resolve('tsx')];
  const missing = DATA_PLANE_NODE_FLAGS.filter((flag) => !own.some((a) => a.split('=')[0] === flag.split('=')[0]));
  return [...missing, ...own];
}

/** Flags that carry a script of their own: a child forked with them runs that script, not its module. */
const SCRIPT_FLAGS = new Set(['-e', '--eval', '-p', '--print', '-pe']);

/**
 * `argv` without `-e`/`-p` and their script: a parent started as `node -e '...'` would otherwise
 * fork children that run the parent's script again, and fork again (seen: 120 processes in 20 s).
 */
function withoutScriptFlags(argv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (SCRIPT_FLAGS.has(flag)) i++;
    else if (!/^--(eval|print)=/.test(flag)) kept.push(flag);
  }
  return kept;
}
