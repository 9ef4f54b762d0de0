import { keyString, type FrameKey } from '../transport/frame-key';
import { ReceiveTimeoutError } from '../transport/errors';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import { AllToAllShapeError, ExchangeTimeoutError } from './errors';

/**
 * One all-to-all: sends `outgoing[d]` to every other rank d (exactly one frame each, empty frames
 * included, so a rank with nothing to say never hangs the others), passes `outgoing[rank]` to
 * itself without sending it, and returns the frame of every rank, indexed by source rank.
 *
 * Completes when every frame has arrived and every peer has accepted this rank's frame. After
 * `timeoutMs` it throws ExchangeTimeoutError naming the ranks missing; a send or receive failure
 * (unreachable or refusing peer) is thrown as soon as it happens.
 */
export async function exchange(
  transport: Transport,
  key: FrameKey,
  outgoing: OutgoingFrame[],
  timeoutMs: number,
): Promise<IncomingFrame[]> {
  const { rank, worldSize } = transport;
  if (outgoing.length !== worldSize) {
    throw new AllToAllShapeError(`exchange ${keyString(key)}: ${outgoing.length} outgoing frames for a world of ${worldSize}`);
  }
  const incoming: (IncomingFrame | undefined)[] = Array.from({ length: worldSize }, () => undefined);
  const accepted = new Array<boolean>(worldSize).fill(false);
  const own = outgoing[rank]!;
  incoming[rank] = own.expertIds ? { source: rank, payload: own.payload, expertIds: own.expertIds } : { source: rank, payload: own.payload };
  accepted[rank] = true;

  const work: Promise<void>[] = [];
  for (let peer = 0; peer < worldSize; peer++) {
    if (peer === rank) continue;
    work.push(transport.send(peer, key, outgoing[peer]!).then(() => void (accepted[peer] = true)));
    work.push(
      transport.receive(peer, key, timeoutMs).then(
        (frame) => void (incoming[peer] = frame),
        (error: unknown) => {
          if (!(error instanceof ReceiveTimeoutError)) throw error; // timeouts are reported below, all together
        },
      ),
    );
  }
  await settleWithin(work, timeoutMs);

  const missing = incoming.flatMap((frame, source) => (frame ? [] : [source]));
  if (missing.length > 0) {
    throw new ExchangeTimeoutError(key, missing, rank, worldSize, timeoutMs, worldSize - missing.length);
  }
  const unaccepted = accepted.flatMap((ok, dest) => (ok ? [] : [dest]));
  if (unaccepted.length > 0) throw new ExchangeTimeoutError(key, unaccepted, rank, worldSize, timeoutMs, worldSize, true);
  return incoming as IncomingFrame[];
}

/**
 * Waits for every send and receive of an exchange, or `timeoutMs`, whichever comes first; the
 * caller then names what is missing. A failure other than a receive timeout rejects at once.
 */
export async function settleWithin(work: readonly Promise<unknown>[], timeoutMs: number): Promise<void> {
  const all = Promise.all(work);
  all.catch(() => {}); // after a timeout, late failures have nobody to tell
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
  try {
    await Promise.race([all, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
