import { frameId, type FrameKey } from './frame-key';
import { DuplicateFrameError, ReceiveTimeoutError, StaleFrameError, TransportClosedError } from './errors';
import type { IncomingFrame } from './transport';

interface Waiter {
  resolve: (frame: IncomingFrame) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface Stored {
  frame: IncomingFrame;
  bytes: number;
  step: number;
}

interface Admission {
  bytes: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Default bound of the bytes a rank holds for frames nobody has taken yet. */
export const DEFAULT_MAILBOX_BYTES = 1024 * 1024 * 1024;


/**
 * The frames that have arrived at one rank, keyed by (step, layer, chunk, phase, source), and
 * the receive() calls waiting for them. Bounded: a frame is stored only after `reserve()` found
 * room (the whole store holds at most `capacityBytes`, or one frame when that one is larger);
 * a frame somebody already waits for is always admitted. Frames of steps older than the newest
 * step taken minus one are refused as stale and dropped, so nothing lingers forever.
 */
export class FrameStore {
  private readonly frames = new Map<string, Stored>();
  private readonly waiters = new Map<string, Waiter>();
  /** ids taken, by step: a second frame for a taken id is a duplicate. */
  private readonly taken = new Map<number, Set<string>>();
  private readonly admissions: Admission[] = [];
  private newestStep = -Infinity;
  private used = 0;

  constructor(
    /** Rank that owns this store (for messages). */
    readonly rank: number,
    readonly capacityBytes = DEFAULT_MAILBOX_BYTES,
  ) {}

  /** Bytes held or reserved for frames not yet taken. */
  bytesHeld(): number {
    return this.used;
  }

  /** Frames of steps below this are stale (refused and dropped). */
  oldestLiveStep(): number {
    return this.newestStep - 1;
  }

  /** Throws DuplicateFrameError or StaleFrameError when a frame from `source` for `key` cannot be accepted. */
  check(source: number, key: FrameKey): void {
    const id = frameId(source, key);
    if (this.frames.has(id)) throw new DuplicateFrameError(key, source, 'a frame for this key is already waiting to be received');
    if (this.taken.get(key.step)?.has(id)) throw new DuplicateFrameError(key, source, 'a frame for this key was already received');
    if (key.step < this.newestStep - 1) throw new StaleFrameError(key, source, this.newestStep);
  }

  /**
   * Waits until `bytes` fit (first come, first served) and reserves them. A frame somebody is
   * already waiting for skips the queue. Pair with put() or release().
   */
  reserve(bytes: number, source: number, key: FrameKey): Promise<void> {
    if (this.waiters.has(frameId(source, key)) || (this.admissions.length === 0 && this.fits(bytes))) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => this.admissions.push({ bytes, resolve, reject }));
  }

  /** Gives back `bytes` reserved for a frame that will not be put. */
  release(bytes: number): void {
    this.used -= bytes;
    this.admit();
  }

  /** Stores a frame whose `bytes` were reserved, or hands it to the receive() waiting for it. */
  put(source: number, key: FrameKey, frame: IncomingFrame, bytes: number): void {
    this.check(source, key);
    const id = frameId(source, key);
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.waiters.delete(id);
      clearTimeout(waiter.timer);
      this.markTaken(id, key.step);
      this.release(bytes);
      waiter.resolve(frame);
      return;
    }
    this.frames.set(id, { frame, bytes, step: key.step });
  }

  /** The frame from `source` for `key`: at once if it is here, else when it arrives, or ReceiveTimeoutError. */
  take(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    const id = frameId(source, key);
    const stored = this.frames.get(id);
    if (stored) {
      this.frames.delete(id);
      this.markTaken(id, key.step);
      this.release(stored.bytes);
      return Promise.resolve(stored.frame);
    }
    if (this.waiters.has(id)) {
      return Promise.reject(new DuplicateFrameError(key, source, `rank ${this.rank} is already waiting for it`));
    }
    if (this.taken.get(key.step)?.has(id)) {
      return Promise.reject(new DuplicateFrameError(key, source, `rank ${this.rank} already received it`));
    }
    return new Promise<IncomingFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new ReceiveTimeoutError(key, source, this.rank, timeoutMs));
      }, timeoutMs);
      this.waiters.set(id, { resolve, reject, timer });
    });
  }

  /** Whether the frame from `source` for `key` is here, not yet taken. */
  has(source: number, key: FrameKey): boolean {
    return this.frames.has(frameId(source, key));
  }

  /**
   * Rejects every receive now waiting for a frame from `source` with `error` (its stream broke:
   * the frame will not come). Frames already here stay.
   */
  failSource(source: number, error: Error): void {
    for (const [id, waiter] of this.waiters) {
      if (!id.startsWith(`${source}/`)) continue;
      clearTimeout(waiter.timer);
      this.waiters.delete(id);
      waiter.reject(error);
    }
  }

  /** Drops every frame and rejects every waiter and admission with `reason`. */
  close(reason: string): void {
    const error = new TransportClosedError(`rank ${this.rank}: ${reason}`);
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    for (const admission of this.admissions.splice(0)) admission.reject(error);
    this.waiters.clear();
    this.frames.clear();
    this.taken.clear();
    this.used = 0;
    this.newestStep = -Infinity;
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.capacityBytes;
  }

  private admit(): void {
    while (this.admissions.length > 0 && this.fits(this.admissions[0]!.bytes)) {
      const next = this.admissions.shift()!;
      this.used += next.bytes;
      next.resolve();
    }
  }

  private markTaken(id: string, step: number): void {
    let set = this.taken.get(step);
    if (!set) this.taken.set(step, (set = new Set()));
    set.add(id);
    if (step > this.newestStep) {
      this.newestStep = step;
      this.prune();
    }
  }

  /** Forgets steps older than the newest taken minus one, and drops their untaken frames. */
  private prune(): void {
    const oldest = this.newestStep - 1;
    for (const step of this.taken.keys()) if (step < oldest) this.taken.delete(step);
    for (const [id, stored] of this.frames) {
      if (stored.step < oldest) {
        this.frames.delete(id);
        this.used -= stored.bytes;
      }
    }
    this.admit();
  }
}
