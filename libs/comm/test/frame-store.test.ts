/**
 * FrameStore's one timer for every waiting receive: it stays set (unref'd) while nobody waits,
 * so a receive that comes later still times out, on time, whether its deadline is later than
 * the timer's (the timer fires early, finds nothing due, and is set again) or earlier (it is
 * set again at once).
 */
import { describe, expect, it } from 'vitest';
import { FrameStore } from '../src/transport/frame-store';
import { ReceiveTimeoutError } from '../src/transport/errors';
import type { FrameKey } from '../src/transport/frame-key';
import type { IncomingFrame } from '../src/transport/transport';

const key = (step: number): FrameKey => ({ step, layer: 0, chunk: 0, phase: 'DISPATCH' });
const frame: IncomingFrame = { source: 1, payload: { dtype: 'F32', rows: 0, cols: 4, data: new Uint8Array(0) } };

/** How long `p` took to reject, ms, and with what. */
async function rejection(p: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { ms: performance.now() - started, error };
}

describe('FrameStore receive deadlines', () => {
  it('times out a receive whose deadline is later than one a receive already answered', async () => {
    const store = new FrameStore(0);
    const first = store.take(1, key(0), 60);
    store.putNow(1, key(0), frame, 0);
    await first;
    const { ms, error } = await rejection(store.take(1, key(1), 150));
    expect(error).toBeInstanceOf(ReceiveTimeoutError);
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThan(2_000);
    store.close('done');
  });

  it('times out a receive whose deadline is earlier than one a receive already answered', async () => {
    const store = new FrameStore(0);
    const first = store.take(1, key(0), 60_000);
    store.putNow(1, key(0), frame, 0);
    await first;
    const { ms, error } = await rejection(store.take(1, key(1), 50));
    expect(error).toBeInstanceOf(ReceiveTimeoutError);
    expect(ms).toBeLessThan(2_000);
    store.close('done');
  });

  it('hands a frame put before or after the receive, once, and refuses it again', async () => {
    const store = new FrameStore(0);
    expect(store.putNow(1, key(0), frame, 8)).toBe(true);
    expect(store.bytesHeld()).toBe(8);
    await expect(store.take(1, key(0), 1_000)).resolves.toBe(frame);
    expect(store.bytesHeld()).toBe(0);
    const waiting = store.take(1, key(1), 1_000);
    expect(store.putNow(1, key(1), frame, 8)).toBe(true);
    await expect(waiting).resolves.toBe(frame);
    expect(store.bytesHeld()).toBe(0);
    expect(() => store.putNow(1, key(1), frame, 8)).toThrow(/already received/);
    store.close('done');
  });

  it('says a frame must wait when it does not fit, and takes it once a receive makes room', async () => {
    const store = new FrameStore(0, 10);
    expect(store.putNow(1, key(0), frame, 8)).toBe(true);
    expect(store.putNow(2, key(0), frame, 8)).toBe(false);
    const room = store.reserve(8, 2, key(0));
    await store.take(1, key(0), 1_000);
    await room;
    store.put(2, key(0), frame, 8);
    await expect(store.take(2, key(0), 1_000)).resolves.toBe(frame);
    store.close('done');
  });
});
