/**
 * What makes a run fail from outside its RPCs: a worker lost (silent), a worker process that
 * exited, an interrupt. The first such failure wins; every wait of the run is raced against it,
 * so nothing waits on a worker that is gone.
 */
import { WorkerRpcError } from '../errors';

/** An RPC error this close after a failure is a consequence of it, and the failure is reported. */
const CONSEQUENCE_GRACE_MS = 500;

export class RunGuard {
  failure?: Error;
  private readonly listeners = new Set<(error: Error) => void>();

  /** Records the run's failure (only the first counts) and wakes every waiter. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const listener of [...this.listeners]) listener(error);
  }

  /** Calls `listener` with the failure (at once when there is one); returns the unsubscribe function. */
  onFailure(listener: (error: Error) => void): () => void {
    if (this.failure) {
      listener(this.failure);
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Fails the run when `signal` aborts, with its reason. */
  watch(signal: AbortSignal | undefined): () => void {
    if (!signal) return () => {};
    const onAbort = () => this.fail(signal.reason instanceof Error ? signal.reason : new Error(`run interrupted: ${String(signal.reason)}`));
    if (signal.aborted) {
      onAbort();
      return () => {};
    }
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  /**
   * `work`'s result, unless the run fails first. When `work` fails with a `WorkerRpcError` (a
   * worker unreachable, say), waits briefly for the failure that explains it (the process exited)
   * and reports that instead.
   */
  async run<T>(work: Promise<T>): Promise<T> {
    if (this.failure) {
      work.catch(() => {});
      throw this.failure;
    }
    let off = () => {};
    const failed = new Promise<never>((_, reject) => {
      off = this.onFailure(reject);
    });
    try {
      return await Promise.race([work, failed]);
    } catch (error) {
      if (error instanceof WorkerRpcError && !this.failure) {
        await new Promise<void>((resolve) => {
          let stop = () => {};
          const timer = setTimeout(() => {
            stop();
            resolve();
          }, CONSEQUENCE_GRACE_MS);
          stop = this.onFailure(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      throw this.failure ?? error;
    } finally {
      off();
      work.catch(() => {}); // a losing `work` must not become an unhandled rejection
    }
  }
}
