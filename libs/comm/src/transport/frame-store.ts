import { frameId, type FrameKey } from './frame-key';
import { DuplicateFrameError, ReceiveTimeoutError, StaleFrameError, TransportClosedError } from './errors';
import type { IncomingFrame } from './transport';

interface Waiter {
  resolve: (frame: IncomingFrame) => void;
  reject: (error: Error) => void;
  /** performance.now() ms when it times out. */
  deadline: number;
  key: FrameKey;
  source: number;
  timeoutMs: number;
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
  /**
   * One timer for every waiting receive, set for the earliest deadline (a timer a receive, set
   * and cleared for every frame, cost as much as the rest of the store's work on it). While
   * nobody waits it stays set but unref'd (it must not hold the process up to a deadline nobody
   * waits for), so a receive that comes next, with a later deadline, finds it set.
   */
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;

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
    this.checkId(frameId(source, key), source, key);
  }

  private checkId(id: string, source: number, key: FrameKey): void {
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
    const id = frameId(source, key);
    this.checkId(id, source, key);
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.used -= bytes; // handed over, never held
      this.deliver(id, key, waiter, frame);
      this.admit();
      return;
    }
    this.frames.set(id, { frame, bytes, step: key.step });
  }

  /**
   * put() without reserve() where it needs no wait: stores the frame (or hands it to the receive
   * waiting for it) when somebody waits for it or its `bytes` fit now with nobody queued for room,
   * and says true; else false (reserve, then put). Throws as check() does.
   */
  putNow(source: number, key: FrameKey, frame: IncomingFrame, bytes: number): boolean {
    const id = frameId(source, key);
    this.checkId(id, source, key);
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.deliver(id, key, waiter, frame);
      return true;
    }
    if (this.admissions.length > 0 || !this.fits(bytes)) return false;
    this.used += bytes;
    this.frames.set(id, { frame, bytes, step: key.step });
    return true;
  }

  private deliver(id: string, key: FrameKey, waiter: Waiter, frame: IncomingFrame): void {
    this.waiters.delete(id);
    if (this.waiters.size === 0) this.timer?.unref();
    this.markTaken(id, key.step);
    waiter.resolve(frame);
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
      const deadline = performance.now() + timeoutMs;
      this.waiters.set(id, { resolve, reject, deadline, key, source, timeoutMs });
      if (deadline < this.timerAt) this.armTimer(deadline);
      else this.timer!.ref();
    });
  }

  /** No timer (the store closed). */
  private disarmTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** Sets the one timer for `deadline` (the earliest of the waiters'). */
  private armTimer(deadline: number): void {
    clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(() => this.expire(), Math.max(0, deadline - performance.now()));
  }

  /** Fails the receives whose deadline passed (if any); sets the timer for the next one, if any. */
  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, waiter] of this.waiters) {
      if (waiter.deadline <= now) {
        this.waiters.delete(id);
        waiter.reject(new ReceiveTimeoutError(waiter.key, waiter.source, this.rank, waiter.timeoutMs));
      } else if (waiter.deadline < next) next = waiter.deadline;
    }
    if (next < Infinity) this.armTimer(next);
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
      this.waiters.delete(id);
      waiter.reject(error);
    }
    if (this.waiters.size === 0) this.timer?.unref();
  }

  /** Drops every frame and rejects every waiter and admission with `reason`. */
  close(reason: string): void {
    const error = new TransportClosedError(`rank ${this.rank}: ${reason}`);
    this.disarmTimer();
    for (const waiter of this.waiters.values()) waiter.reject(error);
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
