import { DEFAULT_MAILBOX_BYTES, FrameStore } from '../transport/frame-store';
import { DuplicateFrameError, PeerUnreachableError, RankRangeError, TransportClosedError } from '../transport/errors';
import { frameId, type FrameKey } from '../transport/frame-key';
import { copyFrame, payloadBytes } from '../transport/payload';
import type { IncomingFrame, OutgoingFrame } from '../transport/transport';
import { float32View, int32View } from '../codec/endian';
import type { EncodedTensor } from '../codec/types';
import { MalformedFrameError, partRange, type FramePart } from './frame-message';

/** A frame for a run this worker is not running (or while it runs none). */
export class RunMismatchError extends Error {
  override readonly name = 'RunMismatchError';
}

export interface PeerMailboxOptions {
  /** Bound on the bytes held for frames not yet received (default 1 GiB; one larger frame still fits). */
  capacityBytes?: number;
  /**
   * HTTP/2 receive window (connection and per stream) the Peer service asks senders to use.
   * The grpc-js server keeps Node's 64 KiB default otherwise, which caps a stream at a fraction
   * of what the socket can move. 0 leaves the default.
   */
  receiveWindowBytes?: number;
}

/** One open inbound stream, for diagnostics. */
export interface InboundConnection {
  source: number;
  connection: number;
  runId: string;
  /** The remote address, as grpc-js reports it ("127.0.0.1:54321"). */
  peer: string;
}

interface Run {
  runId: string;
  rank: number;
  worldSize: number;
  store: FrameStore;
  /** Sources whose stream broke (see peerLost), until they open a new one. */
  lost: Map<number, Error>;
}

/** Parts of one multi-part frame being put back together. */
interface Assembly {
  first: FramePart;
  step: number;
  bytes: number;
  reserved: Promise<void>;
  got: Uint8Array;
  count: number;
  data?: Uint8Array;
  scales?: Uint8Array;
  expertIds?: Uint8Array;
  weights?: Uint8Array;
}


/**
 * The receiving end of the data plane on one worker: the Peer service puts frames (and parts of
 * frames, reassembled here) into it, and the GrpcTransport of the current run takes them out with
 * receive(). One per worker process, across runs: GrpcTransport opens it for its run, and frames
 * for any other run are refused. Bounded by `capacityBytes` (a frame is acknowledged only once it
 * fits, which holds the sender back).
 */
export class PeerMailbox {
  readonly capacityBytes: number;
  readonly receiveWindowBytes: number;
  private run?: Run;
  private readonly assemblies = new Map<string, Assembly>();
  private readonly inbound = new Set<InboundConnection>();

  constructor(options: PeerMailboxOptions = {}) {
    this.capacityBytes = options.capacityBytes ?? DEFAULT_MAILBOX_BYTES;
    this.receiveWindowBytes = options.receiveWindowBytes ?? 64 * 1024 * 1024;
  }

  /** The run whose frames are accepted, if any. */
  get runId(): string | undefined {
    return this.run?.runId;
  }

  /** Accepts frames of `runId` from now on, for `rank` of `worldSize`; drops whatever an earlier run left. */
  open(runId: string, rank: number, worldSize: number): void {
    this.closeRun(this.run?.runId ?? '', `run ${runId} replaced it`);
    this.run = { runId, rank, worldSize, store: new FrameStore(rank, this.capacityBytes), lost: new Map() };
  }

  /** Stops accepting frames of `runId` (if it is the open run) and fails its waiting receives. */
  closeRun(runId: string, reason = 'transport closed'): void {
    if (!this.run || this.run.runId !== runId) return;
    this.run.store.close(`run ${runId}: ${reason}`);
    this.assemblies.clear();
    this.run = undefined;
  }

  /** The frame rank `source` sent for `key` in the open run (see Transport.receive). */
  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    const run = this.run;
    if (!run) return Promise.reject(new TransportClosedError('receive: no run is open on this mailbox'));
    if (!Number.isInteger(source) || source < 0 || source >= run.worldSize) {
      return Promise.reject(new RankRangeError('source', source, run.worldSize));
    }
    const lost = run.lost.get(source);
    if (lost && !run.store.has(source, key)) return Promise.reject(lost);
    return run.store.take(source, key, timeoutMs);
  }

  /**
   * Rank `source`'s stream of run `runId` broke (the sender went away mid-stream): the receives
   * waiting for its frames fail now with PeerUnreachableError instead of waiting out their timeout,
   * and so do later ones for frames not here, until `source` opens a new stream.
   */
  peerLost(runId: string, source: number, address: string, why: string): void {
    const run = this.run;
    if (!run || run.runId !== runId || source === run.rank || source < 0 || source >= run.worldSize) return;
    const error = new PeerUnreachableError(source, address, `its stream to rank ${run.rank} broke before the frame came (${why})`);
    run.lost.set(source, error);
    run.store.failSource(source, error);
  }

  /** A rank's frame to itself: stored like any other (copied), never sent. */
  async deliverLocal(key: FrameKey, frame: OutgoingFrame): Promise<void> {
    const run = this.requireRun(undefined);
    run.store.check(run.rank, key);
    const copy = copyFrame(frame);
    const bytes = payloadBytes(copy.payload) + (copy.expertIds?.byteLength ?? 0) + (copy.weights?.byteLength ?? 0);
    await run.store.reserve(bytes, run.rank, key);
    this.put(run, run.rank, key, { source: run.rank, ...copy }, bytes);
  }

  /**
   * Takes one received part of a frame from a stream whose hello named run `runId`. Resolves once
   * the part is in (the moment to acknowledge it); throws when it must be refused, with a message
   * saying why: another run, a rank out of range, a duplicate, parts that disagree.
   */
  async acceptPart(runId: string, part: FramePart): Promise<void> {
    if (part.parts === 1) return this.acceptWhole(runId, part);
    const run = this.requireRun(runId);
    if (part.source >= run.worldSize) throw new RankRangeError('source', part.source, run.worldSize);
    const id = frameId(part.source, part.key);
    const bytes = heldBytes(part);
    let asm = this.assemblies.get(id);
    if (!asm) {
      run.store.check(part.source, part.key);
      this.pruneAssemblies(run);
      asm = {
        first: part,
        step: part.key.step,
        bytes,
        reserved: run.store.reserve(bytes, part.source, part.key),
        got: new Uint8Array(part.parts),
        count: 0,
      };
      asm.reserved.catch(() => {}); // a closed run rejects it; the parts waiting on it report that
      this.assemblies.set(id, asm);
    } else {
      const a = asm.first;
      if (a.dtype !== part.dtype || a.rows !== part.rows || a.cols !== part.cols || a.parts !== part.parts || a.blockSize !== part.blockSize) {
        throw new MalformedFrameError(
          `part ${part.part} says ${part.dtype} [${part.rows}, ${part.cols}] in ${part.parts} parts, ` +
            `part ${a.part} said ${a.dtype} [${a.rows}, ${a.cols}] in ${a.parts} parts`,
        );
      }
    }
    if (asm.got[part.part]) throw new DuplicateFrameError(part.key, part.source, `part ${part.part} of ${part.parts} arrived twice`);
    asm.got[part.part] = 1;
    await asm.reserved;
    if (this.assemblies.get(id) !== asm || this.run !== run) throw new TransportClosedError(`run ${runId} closed while its frame arrived`);
    asm.data ??= new Uint8Array(part.totalBytes);
    asm.data.set(part.data, partRange(part.totalBytes, part.parts, part.part).begin);
    if (part.part === 0) {
      asm.scales = part.scales.slice();
      asm.expertIds = part.expertIds.slice();
      asm.weights = part.weights.slice();
    }
    if (++asm.count === part.parts) {
      this.assemblies.delete(id);
      this.put(run, part.source, part.key, frameOf(asm.first, asm.data, asm.scales!, asm.expertIds!, asm.weights!), asm.bytes);
    }
  }

  /**
   * Takes a frame that came whole (one part: every frame of the socket data plane) without a
   * turn of the event loop when it can: undefined once it is in; while it waits for room, a
   * promise that resolves once it is in. Throws (or rejects) as acceptPart does.
   */
  acceptWhole(runId: string, part: FramePart): Promise<void> | undefined {
    const run = this.requireRun(runId);
    if (part.source >= run.worldSize) throw new RankRangeError('source', part.source, run.worldSize);
    if (this.assemblies.size > 0 && this.assemblies.has(frameId(part.source, part.key))) {
      throw new DuplicateFrameError(part.key, part.source, 'a multi-part frame for this key is arriving');
    }
    const bytes = heldBytes(part);
    const frame = frameOf(part, part.data, part.scales, part.expertIds, part.weights);
    if (run.store.putNow(part.source, part.key, frame, bytes)) return undefined;
    return run.store.reserve(bytes, part.source, part.key).then(() => this.put(run, part.source, part.key, frame, bytes));
  }

  /** Inbound streams now open (for diagnostics and tests: several connections show as several peers). */
  connections(): InboundConnection[] {
    return [...this.inbound];
  }

  /** @internal the Peer service registers its streams here. */
  track(connection: InboundConnection): () => void {
    if (this.run?.runId === connection.runId) this.run.lost.delete(connection.source);
    this.inbound.add(connection);
    return () => this.inbound.delete(connection);
  }

  private requireRun(runId: string | undefined): Run {
    const run = this.run;
    if (!run) throw new RunMismatchError(`no run is open here${runId ? ` (frame of run ${runId})` : ''}`);
    if (runId !== undefined && runId !== run.runId) throw new RunMismatchError(`run ${runId} is not this worker's run ${run.runId}`);
    return run;
  }

  private put(run: Run, source: number, key: FrameKey, frame: IncomingFrame, bytes: number): void {
    try {
      run.store.put(source, key, frame, bytes);
    } catch (error) {
      run.store.release(bytes);
      throw error;
    }
  }

  /** Drops assemblies of stale steps (a sender that failed midway never completes them). */
  private pruneAssemblies(run: Run): void {
    const oldest = run.store.oldestLiveStep();
    for (const [id, asm] of this.assemblies) {
      if (asm.step < oldest) {
        this.assemblies.delete(id);
        asm.reserved.then(() => run.store.release(asm.bytes), () => {});
      }
    }
  }
}

/** What a frame takes of the mailbox's capacity: its data and scales, 4 bytes of expert id a row, its weights. */
function heldBytes(part: FramePart): number {
  const scaleBytes = part.dtype === 'FP8_E4M3' ? 4 * Math.ceil((part.rows * part.cols) / part.blockSize) : 0;
  return part.totalBytes + scaleBytes + 4 * part.rows + part.weights.byteLength;
}

function frameOf(header: FramePart, data: Uint8Array, scales: Uint8Array, expertIds: Uint8Array, weights: Uint8Array): IncomingFrame {
  const payload: EncodedTensor = { dtype: header.dtype, rows: header.rows, cols: header.cols, data };
  if (header.dtype === 'FP8_E4M3') {
    payload.scales = scales;
    payload.blockSize = header.blockSize;
  }
  const frame: IncomingFrame = { source: header.source, payload };
  if (expertIds.byteLength > 0) frame.expertIds = int32View(expertIds);
  if (weights.byteLength > 0) frame.weights = float32View(weights);
  return frame;
}
