import { keyString, type FrameKey } from '../transport/frame-key';
import { settleWithin } from './exchange';
import { ReceiveTimeoutError } from '../transport/errors';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import { AllToAllShapeError, ExchangeTimeoutError } from './errors';

/**
 * An all-to-all among a subset of the ranks: sends `outgoing.get(p)` to every rank p of `peers`
 * (exactly one frame each, empty ones included) and returns the frame each of them sent here.
 * Used by the hierarchical all-to-all, whose two hops talk to disjoint sets of peers (the same
 * local index on the other nodes; the other ranks of this node), so both hops can share one key.
 * Times out as `exchange` does, naming the peers that did not answer.
 */
export async function exchangeAmong(
  transport: Transport,
  key: FrameKey,
  peers: readonly number[],
  outgoing: ReadonlyMap<number, OutgoingFrame>,
  timeoutMs: number,
): Promise<Map<number, IncomingFrame>> {
  const { rank, worldSize } = transport;
  for (const p of peers) {
    if (p === rank || p < 0 || p >= worldSize) throw new AllToAllShapeError(`exchange ${keyString(key)} on rank ${rank}: peer ${p} is not another rank of 0..${worldSize - 1}`);
    if (!outgoing.has(p)) throw new AllToAllShapeError(`exchange ${keyString(key)} on rank ${rank}: no frame for peer ${p}`);
  }
  const incoming = new Map<number, IncomingFrame>();
  const accepted = new Set<number>();
  const work: Promise<void>[] = [];
  for (const peer of peers) {
    work.push(transport.send(peer, key, outgoing.get(peer)!).then(() => void accepted.add(peer)));
    work.push(
      transport.receive(peer, key, timeoutMs).then(
        (frame) => void incoming.set(peer, frame),
        (error: unknown) => {
          if (!(error instanceof ReceiveTimeoutError)) throw error; // reported below, all together
        },
      ),
    );
  }
  await settleWithin(work, timeoutMs);
  const missing = peers.filter((p) => !incoming.has(p));
  if (missing.length > 0) throw new ExchangeTimeoutError(key, missing, rank, peers.length + 1, timeoutMs, incoming.size + 1);
  const unaccepted = peers.filter((p) => !accepted.has(p));
  if (unaccepted.length > 0) throw new ExchangeTimeoutError(key, unaccepted, rank, peers.length + 1, timeoutMs, peers.length + 1, true);
  return incoming;
}
