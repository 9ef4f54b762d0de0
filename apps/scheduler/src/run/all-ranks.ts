/** Waiting on one call per rank: every reply, or one error that names every rank that failed and every one still pending. */
import { WorkerRpcError } from '../errors';

/** After the first failure, how long the other ranks' calls get to settle, so the error can name them all. */
const SETTLE_GRACE_MS = 250;

/**
 * Every rank's reply (index = rank), or, when a call fails, an error that names every rank whose
 * call failed (those failing within a short grace of the first) and those still pending.
 */
export function allRanks<T>(what: string, calls: readonly Promise<T>[]): Promise<T[]> {
  return new Promise<T[]>((resolve, reject) => {
    const replies = new Array<T>(calls.length);
    const failures = new Map<number, Error>();
    let settled = 0;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const failed = [...failures.keys()].sort((a, b) => a - b);
      const pending = calls.flatMap((_, rank) => (failures.has(rank) || rank in replies ? [] : [rank]));
      const first = failures.get(failed[0]!)!;
      if (failed.length === 1 && pending.length === 0) return reject(first);
      const details = failed.map((rank) => failures.get(rank)!.message).join('; ');
      const summary =
        `${what} failed on ${failed.length === 1 ? 'rank' : 'ranks'} ${failed.join(', ')} of ${calls.length}` +
        (pending.length ? ` (no reply yet from ${pending.length === 1 ? 'rank' : 'ranks'} ${pending.join(', ')})` : '');
      const rank = first instanceof WorkerRpcError ? first.rank : failed[0]!;
      const code = first instanceof WorkerRpcError ? first.code : -1;
      const method = first instanceof WorkerRpcError ? first.method : what;
      reject(new WorkerRpcError(`${summary}: ${details}`, rank, method, code));
    };
    calls.forEach((call, rank) =>
      call.then(
        (value) => {
          replies[rank] = value;
          if (++settled === calls.length) (failures.size ? finish() : resolve(replies));
        },
        (error: unknown) => {
          failures.set(rank, error instanceof Error ? error : new Error(String(error)));
          if (++settled === calls.length) finish();
          else timer ??= setTimeout(finish, SETTLE_GRACE_MS);
        },
      ),
    );
    if (calls.length === 0) resolve([]);
  });
}
