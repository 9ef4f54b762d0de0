// The data plane: the Peer service (frames in), links to the other ranks (frames out), and the
// three collectives a step uses (dispatch, combine, all-reduce), all built on one all-to-all:
// every rank sends exactly one frame to every other rank per key (step, layer, chunk, phase),
// an empty one when it has no rows, and waits for one frame from every other rank.
import * as grpc from '@grpc/grpc-js';
import { aligned, decodeRows, encodeRows, keyId, keyString, parseFrame, partRange, tensorMsgOf } from './wire.mjs';

/** Most parts a link writes before it waits for acks. */
const ACK_WINDOW = 8;
/** Bytes the mailbox holds before it stops acknowledging (the senders' windows then hold them back). */
const MAILBOX_BYTES = 256 * 1024 * 1024;

/** A step op could not finish: names the rank, the step and what it waited for (gRPC ABORTED). */
export class StepFailed extends Error {}

/**
 * Frames that arrived for the open run, by (source, key), and the receives waiting for them.
 * Frames for keys nobody asked for yet are kept (peers run ahead); a second frame for a key is
 * refused as a duplicate. Bounded: past MAILBOX_BYTES, `admit` makes the Peer service wait
 * before it acknowledges, which holds the senders back.
 */
export class Mailbox {
  run = undefined; // { runId, rank, worldSize }
  frames = new Map();
  waiters = new Map();
  taken = new Set();
  bytes = 0;
  admissions = [];

  open(runId, rank, worldSize) {
    this.close(`run ${runId} replaced it`);
    this.run = { runId, rank, worldSize };
  }

  close(reason) {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(new StepFailed(`receive cancelled: ${reason}`));
    }
    for (const a of this.admissions.splice(0)) a();
    this.waiters.clear();
    this.frames.clear();
    this.taken.clear();
    this.bytes = 0;
    this.run = undefined;
  }

  /** Forgets frames and taken keys of steps before `step - 1` (a step that failed leaves some behind). */
  prune(step) {
    for (const [id, f] of this.frames) if (f.step < step - 1) this.frames.delete(id) && (this.bytes -= f.bytes);
    for (const id of this.taken) if (Number(id.split('/')[1]) < step - 1) this.taken.delete(id);
    this.release();
  }

  async admit(bytes, id) {
    while (this.bytes > 0 && this.bytes + bytes > MAILBOX_BYTES && !this.waiters.has(id)) await new Promise((r) => this.admissions.push(r));
  }

  release() {
    for (const a of this.admissions.splice(0)) a();
  }

  /** Whether a whole frame for (source, key) arrived already (stored or taken). */
  has(source, key) {
    const id = keyId(source, key);
    return this.frames.has(id) || this.taken.has(id);
  }

  /** Stores (or hands over) a whole frame; throws the reason it is refused. */
  put(runId, source, key, frame) {
    if (!this.run) throw new Error(`no run is open here (frame of run ${runId})`);
    if (runId !== this.run.runId) throw new Error(`run ${runId} is not this worker's run ${this.run.runId}`);
    if (source >= this.run.worldSize) throw new Error(`source ${source} is not a rank of a world of ${this.run.worldSize}`);
    const id = keyId(source, key);
    if (this.frames.has(id) || this.taken.has(id)) throw new Error(`duplicate ${keyString(key)} from rank ${source}`);
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.waiters.delete(id);
      clearTimeout(waiter.timer);
      this.taken.add(id);
      waiter.resolve(frame);
      return;
    }
    const bytes = frame.payload.data.length + 4 * frame.payload.rows;
    this.frames.set(id, { frame, step: key.step, bytes });
    this.bytes += bytes;
  }

  /** The frame `source` sent for `key`; rejects after `timeoutMs` naming what did not arrive. */
  take(source, key, timeoutMs) {
    const id = keyId(source, key);
    const stored = this.frames.get(id);
    if (stored) {
      this.frames.delete(id);
      this.taken.add(id);
      this.bytes -= stored.bytes;
      this.release();
      return Promise.resolve(stored.frame);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new StepFailed(`timed out after ${timeoutMs} ms waiting for ${keyString(key)} from rank ${source}`));
      }, timeoutMs);
      this.waiters.set(id, { resolve, reject, timer });
    });
  }
}

/**
 * The Peer service's Exchange handler: a PeerHello, then frames (or parts of frames), each
 * answered by one PeerAck in order, with `error` set when the frame is refused. A refused frame
 * does not end the stream.
 */
export function peerService(mailbox) {
  const assemblies = new Map();
  return {
    Exchange(call) {
      let hello;
      let chain = Promise.resolve();
      const ack = (frame, error = '') =>
        call.writable &&
        call.write({ step: frame?.step ?? 0, layer: frame?.layer ?? 0, chunk: frame?.chunk ?? 0, phase: frame?.phase ?? 'PHASE_UNSPECIFIED', part: frame?.part ?? 0, error });
      const handle = async (message) => {
        if (message.hello) return void (hello = message.hello);
        if (!message.frame) return ack(undefined, 'PeerMessage carries neither a hello nor a frame');
        try {
          if (!hello) throw new Error('frame before PeerHello: a stream starts with a hello naming run and source');
          const part = parseFrame(message.frame, hello.source);
          await accept(mailbox, assemblies, hello.runId, part);
          ack(message.frame);
        } catch (error) {
          ack(message.frame, error.message);
        }
      };
      call.on('data', (message) => (chain = chain.then(() => handle(message))));
      call.on('end', () => chain.then(() => call.end()));
      call.on('error', () => {});
    },
  };
}

/** Puts a part into the mailbox, reassembling frames that travel in several parts. */
async function accept(mailbox, assemblies, runId, part) {
  const id = `${runId}/${keyId(part.source, part.key)}`;
  await mailbox.admit(part.totalBytes, keyId(part.source, part.key));
  if (part.parts > 1) {
    // a part of a frame that is already complete (stored or taken) is a duplicate too
    if (mailbox.has(part.source, part.key)) throw new Error(`duplicate ${keyString(part.key)} from rank ${part.source}: the frame is already complete`);
    let asm = assemblies.get(id);
    if (!asm) assemblies.set(id, (asm = { first: part, data: new Uint8Array(part.totalBytes), got: new Set() }));
    const a = asm.first;
    if (a.dtype !== part.dtype || a.rows !== part.rows || a.cols !== part.cols || a.parts !== part.parts) {
      throw new Error(`part ${part.part} says ${part.dtype} [${part.rows}, ${part.cols}] in ${part.parts} parts, part ${a.part} said ${a.dtype} [${a.rows}, ${a.cols}] in ${a.parts} parts`);
    }
    if (asm.got.has(part.part)) throw new Error(`duplicate ${keyString(part.key)} from rank ${part.source}: part ${part.part} arrived twice`);
    asm.got.add(part.part);
    asm.data.set(part.data, partRange(part.totalBytes, part.parts, part.part).begin);
    if (part.part === 0) Object.assign(asm, { scales: part.scales, expertIds: part.expertIds });
    if (asm.got.size < part.parts) return;
    assemblies.delete(id);
    part = { ...asm.first, data: asm.data, scales: asm.scales, expertIds: asm.expertIds };
  }
  const payload = { dtype: part.dtype, rows: part.rows, cols: part.cols, data: new Uint8Array(part.data), scales: part.scales, blockSize: part.blockSize };
  const frame = { source: part.source, payload };
  if (part.expertIds.length > 0) frame.expertIds = new Int32Array(aligned(part.expertIds));
  mailbox.put(runId, part.source, part.key, frame);
}

/**
 * One Exchange stream to each other rank: a PeerHello, then frames, each resolved by the peer's
 * PeerAck (acks come in order). At most ACK_WINDOW frames unacknowledged per link.
 */
export class PeerLinks {
  constructor({ PeerClient, runId, rank, peers, grpcOptions }) {
    Object.assign(this, { PeerClient, runId, rank, peers, grpcOptions });
    this.links = new Map();
    this.bytesSent = 0;
  }

  link(dest) {
    let link = this.links.get(dest);
    if (link) return link;
    const client = new this.PeerClient(this.peers[dest], grpc.credentials.createInsecure(), this.grpcOptions);
    link = { client, call: undefined, inflight: [], waiting: [] };
    this.links.set(dest, link);
    return link;
  }

  open(dest, link) {
    const call = link.client.Exchange();
    call.write({ hello: { runId: this.runId, source: this.rank, connection: 0 } });
    call.on('data', (ack) => {
      const next = link.inflight.shift();
      if (!next) return;
      if (ack.error) next.reject(new StepFailed(`rank ${dest} refused ${keyString(next.key)}: ${ack.error}`));
      else next.resolve();
      this.pump(dest, link);
    });
    const fail = (why) => {
      if (link.call !== call) return;
      link.call = undefined;
      for (const p of link.inflight.splice(0).concat(link.waiting.splice(0))) p.reject(new StepFailed(`rank ${dest} at ${this.peers[dest]} is unreachable: ${why}`));
    };
    call.on('error', (e) => fail(e.details || e.message));
    call.on('status', (s) => s.code === grpc.status.OK && fail('the peer ended the stream'));
    link.call = call;
    return call;
  }

  pump(dest, link) {
    while (link.waiting.length > 0 && link.inflight.length < ACK_WINDOW) {
      const next = link.waiting.shift();
      link.inflight.push(next);
      (link.call ?? this.open(dest, link)).write(next.message);
    }
  }

  /** Sends `frame` ({ payload: encoded rows, expertIds? }) to `dest` for `key`; resolves on its ack. */
  send(dest, key, frame) {
    const message = {
      frame: {
        ...key,
        source: this.rank,
        payload: tensorMsgOf(frame.payload),
        expertIds: frame.expertIds ? Buffer.from(frame.expertIds.buffer, frame.expertIds.byteOffset, frame.expertIds.byteLength) : Buffer.alloc(0),
        part: 0,
        parts: 1,
      },
    };
    this.bytesSent += frame.payload.data.length + (frame.payload.scales?.length ?? 0);
    const link = this.link(dest);
    return new Promise((resolve, reject) => {
      link.waiting.push({ message, key, resolve, reject });
      this.pump(dest, link);
    });
  }

  close() {
    for (const link of this.links.values()) {
      link.call?.end();
      link.client.close();
    }
    this.links.clear();
  }
}

/**
 * One all-to-all for `key`: sends outgoing[d] to every other rank d, keeps outgoing[rank], and
 * returns every rank's frame by source. Fails after `timeoutMs` naming the ranks missing.
 */
export async function exchange(net, key, outgoing, timeoutMs) {
  const { rank, worldSize, mailbox, links } = net;
  const incoming = new Array(worldSize);
  incoming[rank] = { source: rank, ...outgoing[rank] };
  const work = [];
  for (let peer = 0; peer < worldSize; peer++) {
    if (peer === rank) continue;
    work.push(links.send(peer, key, outgoing[peer]));
    work.push(mailbox.take(peer, key, timeoutMs).then((frame) => void (incoming[peer] = frame), () => {}));
  }
  const all = Promise.all(work);
  all.catch(() => {});
  let timer;
  await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]).finally(() => clearTimeout(timer));
  const missing = [...incoming.keys()].filter((source) => !incoming[source]);
  if (missing.length > 0) {
    throw new StepFailed(`timed out after ${timeoutMs} ms waiting for ${keyString(key)} from rank ${missing.join(', rank ')} (rank ${rank} has ${worldSize - missing.length} of ${worldSize})`);
  }
  await all; // a refused or undeliverable frame of ours fails here
  return incoming;
}

/** Slots [begin, end) whose expert rank d owns, ascending, for every d: where each slot's row goes. */
export function dispatchLayout(expertIds, owner, worldSize, begin, end) {
  const slotsTo = Array.from({ length: worldSize }, () => []);
  for (let s = begin; s < end; s++) slotsTo[owner[expertIds[s]]].push(s);
  return { slotsTo: slotsTo.map((l) => Int32Array.from(l)), slotCount: expertIds.length };
}

/**
 * Sends row rowOfSlot(s) of `source` [R, cols] for every slot s of the layout to its expert's
 * owner, with the slot's expert id; returns the rows received by source rank (this rank's own
 * included), in the sender's slot order, and the handle the matching combine needs.
 */
export async function dispatch(net, key, layout, source, cols, { rowOfSlot, expertIds, codec, timeoutMs }) {
  const packed = layout.slotsTo.map((slots) => {
    const rows = new Float32Array(slots.length * cols);
    slots.forEach((slot, i) => rows.set(source.subarray(rowOfSlot(slot) * cols, (rowOfSlot(slot) + 1) * cols), i * cols));
    return { rows, ids: Int32Array.from(slots, (slot) => expertIds[slot]) };
  });
  // every row goes through the codec, this rank's own too (encoded and decoded, never sent): the
  // rounding must not depend on where the expert lives
  const outgoing = packed.map((p) => ({ payload: encodeRows(p.rows, p.ids.length, cols, codec), expertIds: p.ids }));
  const incoming = await exchange(net, key, outgoing, timeoutMs);
  const received = incoming.map((frame, src) => {
    if (src === net.rank) return { source: src, rows: decodeRows(outgoing[src].payload), expertIds: packed[src].ids, count: packed[src].ids.length };
    const { rows: count, cols: frameCols } = frame.payload;
    if (count > 0 && frameCols !== cols) throw new StepFailed(`${keyString(key)}: rank ${src} sent rows of ${frameCols} values; rows here have ${cols}`);
    if (!frame.expertIds && count > 0) throw new StepFailed(`${keyString(key)}: rank ${src} sent ${count} rows without expert ids`);
    return { source: src, rows: decodeRows(frame.payload), expertIds: frame.expertIds ?? new Int32Array(0), count };
  });
  return { received, handle: { layout, received: received.map((r) => r.count), cols } };
}

/**
 * The reverse of a dispatch: outputs[src] [handle.received[src], cols] go back to rank src; rows
 * coming back are written into `into` [S, cols] at the slots this rank sent.
 */
export async function combine(net, key, handle, outputs, { codec, timeoutMs, into }) {
  const { layout, cols } = handle;
  const outgoing = outputs.map((rows, src) => ({ payload: encodeRows(rows, handle.received[src], cols, codec) }));
  const incoming = await exchange(net, key, outgoing, timeoutMs);
  layout.slotsTo.forEach((slots, dest) => {
    const { rows: count } = incoming[dest].payload;
    if (count !== slots.length) throw new StepFailed(`${keyString(key)}: rank ${dest} sent back ${count} rows; this rank sent it ${slots.length}`);
    const rows = decodeRows(dest === net.rank ? outgoing[dest].payload : incoming[dest].payload);
    slots.forEach((slot, i) => into.set(rows.subarray(i * cols, (i + 1) * cols), slot * cols));
  });
  return into;
}

/**
 * Sum of `vector` [n] over all ranks, bitwise the same on every rank: reduce-scatter (rank r sums
 * segment r = [floor(r n / W), floor((r+1) n / W)) of every rank's vector in rank order, in float32,
 * from 0), then all-gather. Keys: chunk 0 for the scatter, chunk 1 for the gather.
 */
export async function allReduceSum(net, key, vector, timeoutMs) {
  const { rank, worldSize } = net;
  const n = vector.length;
  const seg = (r) => ({ begin: Math.floor((r * n) / worldSize), end: Math.floor(((r + 1) * n) / worldSize) });
  const segments = Array.from({ length: worldSize }, (_, r) => seg(r));
  const mine = segments[rank];
  const scatter = segments.map(({ begin, end }) => ({ payload: encodeRows(vector.subarray(begin, end), 1, end - begin, 'F32') }));
  const parts = await exchange(net, { ...key, chunk: 2 * key.chunk }, scatter, timeoutMs);
  const sum = new Float32Array(mine.end - mine.begin);
  for (let source = 0; source < worldSize; source++) {
    const part = source === rank ? vector.subarray(mine.begin, mine.end) : decodeRows(parts[source].payload);
    if (part.length !== sum.length) throw new StepFailed(`${keyString(key)}: rank ${source} sent ${part.length} values of segment ${rank}, which has ${sum.length}`);
    for (let i = 0; i < sum.length; i++) sum[i] += part[i];
  }
  const gather = segments.map(() => ({ payload: encodeRows(sum, 1, sum.length, 'F32') }));
  const sums = await exchange(net, { ...key, chunk: 2 * key.chunk + 1 }, gather, timeoutMs);
  const result = new Float32Array(n);
  for (let source = 0; source < worldSize; source++) {
    const part = source === rank ? sum : decodeRows(sums[source].payload);
    if (part.length !== segments[source].end - segments[source].begin) throw new StepFailed(`${keyString(key)}: rank ${source} sent ${part.length} summed values of its segment`);
    result.set(part, segments[source].begin);
  }
  return result;
}
