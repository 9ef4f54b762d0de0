/** Peer.Exchange as a hostile or unusual peer speaks it: every refusal the doc lists, and frames in parts. */
import type { FrameOut, PeerMessage } from '@moe/comm';
import { KIT_MODEL } from '../fixture';
import type { Kit, Run } from '../kit';
import { FrameProbe } from '../probes';
import { CheckFailure } from '../report';
import type { Check } from './check';

const ACK_MS = 5_000;

interface FrameSpec extends Partial<Omit<FrameOut, 'payload'>> {
  shape?: number[];
  dtype?: string;
  data?: Buffer;
  scales?: Buffer;
  blockSize?: number;
}

/** A frame of a later step (1000 + `n`), so it never meets a real one: F32 [0, H] unless told. */
function frame(run: Run, n: number, spec: FrameSpec = {}): PeerMessage {
  const H = run.model.hiddenSize;
  return {
    frame: {
      step: spec.step ?? 1000 + n,
      layer: spec.layer ?? 0,
      chunk: spec.chunk ?? 0,
      phase: spec.phase ?? 'DISPATCH',
      source: spec.source ?? 1 - run.rank,
      payload: {
        shape: spec.shape ?? [0, H],
        dtype: spec.dtype ?? 'F32',
        data: spec.data ?? Buffer.alloc(0),
        ...(spec.scales ? { scales: spec.scales, blockSize: spec.blockSize ?? 0 } : {}),
      },
      expertIds: (spec.expertIds as Buffer | undefined) ?? Buffer.alloc(0),
      part: spec.part ?? 0,
      parts: spec.parts ?? 1,
    },
  } as PeerMessage;
}

/** Sends `message` on `probe`; returns PeerAck.error ("" when accepted); fails when there is no ack, it ends the stream or does not echo the key. */
async function ask(probe: FrameProbe, what: string, message: PeerMessage): Promise<string> {
  const answer = await probe.send(message, ACK_MS);
  if ('timeout' in answer) throw new CheckFailure(`${what}: no PeerAck within ${ACK_MS} ms (every frame and every part is answered by one PeerAck)`);
  if ('ended' in answer) throw new CheckFailure(`${what}: ${answer.ended}; a refused frame is answered with PeerAck.error and the stream goes on`);
  const f = message.frame!;
  const a = answer.ack;
  if (a.step !== f.step || a.layer !== f.layer || a.chunk !== f.chunk || a.phase !== f.phase || a.part !== f.part) {
    throw new CheckFailure(`${what}: the PeerAck says step ${a.step} layer ${a.layer} chunk ${a.chunk} ${a.phase} part ${a.part}; an ack echoes its frame's key and part`);
  }
  return a.error;
}

/** A loaded run with the reference peer, for frames to be checked against. */
async function loadedRun(kit: Kit): Promise<Run> {
  const run = kit.plan(KIT_MODEL, [0, 0, 1, 1], 0);
  await kit.load(run);
  return run;
}

export const malformedFrame: Check = {
  id: 'malformed-frame',
  title: 'refuses every malformed frame the doc lists with PeerAck.error, echoing the key, and keeps the stream',
  needs: ['peer'],
  async run(kit) {
    const run = await loadedRun(kit);
    const H = run.model.hiddenSize;
    const source = 1 - run.rank;
    const refusals: string[] = [];
    const wrong: string[] = [];
    const expectRefused = async (probe: FrameProbe, what: string, message: PeerMessage) => {
      const error = await ask(probe, `a frame with ${what}`, message);
      if (error) refusals.push(`${what}: "${error}"`);
      else wrong.push(`accepted a frame with ${what}`);
    };
    const probe = new FrameProbe(kit.address, { runId: run.runId, source, connection: 99 });
    const others: FrameProbe[] = [];
    try {
      const control = await ask(probe, 'a well-formed empty frame (a later step, DISPATCH, F32 [0, H])', frame(run, 0));
      if (control) throw new CheckFailure(`refused a well-formed empty frame for a later step (it must be kept: peers run ahead): "${control}"`);
      await expectRefused(probe, 'the same (source, key) again', frame(run, 0));
      await expectRefused(probe, 'phase PHASE_UNSPECIFIED', frame(run, 1, { phase: 'PHASE_UNSPECIFIED' }));
      await expectRefused(probe, 'layer -2', frame(run, 2, { layer: -2 }));
      await expectRefused(probe, `source ${1 - source} on a stream whose hello said source ${source}`, frame(run, 3, { source: 1 - source }));
      await expectRefused(probe, 'part 2 of 2', frame(run, 4, { part: 2, parts: 2 }));
      await expectRefused(probe, 'dtype I32 (not a row dtype)', frame(run, 5, { dtype: 'I32', shape: [1, H], data: Buffer.alloc(4 * H) }));
      await expectRefused(probe, `a 3-dim shape [1, 1, ${H}]`, frame(run, 6, { shape: [1, 1, H], data: Buffer.alloc(4 * H) }));
      await expectRefused(probe, `F32 [2, ${H}] carrying 12 bytes of data (needs ${8 * H})`, frame(run, 7, { shape: [2, H], data: Buffer.alloc(12) }));
      await expectRefused(probe, `FP8_E4M3 [1, ${H}], block_size ${H}, with 8 bytes of scales (needs 4)`, frame(run, 8, { dtype: 'FP8_E4M3', shape: [1, H], data: Buffer.alloc(H), scales: Buffer.alloc(8), blockSize: H, expertIds: Buffer.alloc(4) }));
      await expectRefused(probe, `F32 [1, ${H}] with 2 bytes of expert_ids (needs 4 or none)`, frame(run, 9, { shape: [1, H], data: Buffer.alloc(4 * H), expertIds: Buffer.alloc(2) }));
      // streams that are wrong from their start
      const noHello = new FrameProbe(kit.address, undefined);
      const otherRun = new FrameProbe(kit.address, { runId: `${run.runId}-not-loaded`, source, connection: 98 });
      const notARank = new FrameProbe(kit.address, { runId: run.runId, source: 7, connection: 97 });
      others.push(noHello, otherRun, notARank);
      await expectRefused(noHello, 'no PeerHello before it', frame(run, 10));
      await expectRefused(otherRun, `a hello for run "${run.runId}-not-loaded", which is not loaded`, frame(run, 11));
      await expectRefused(notARank, 'source 7 in a world of 2 ranks', frame(run, 12, { source: 7 }));
    } finally {
      probe.close();
      others.forEach((p) => p.close());
    }
    if (wrong.length) throw new CheckFailure(`${wrong.join('; ')}: each must be refused with PeerAck.error saying why`);
    return `refused ${refusals.length}, each with a reason: ${refusals.join(' | ')}`;
  },
};

export const multiPartFrames: Check = {
  id: 'multi-part-frames',
  title: 'takes a frame in parts (one ack per part, in order); a part twice is refused',
  needs: ['peer'],
  async run(kit) {
    const run = await loadedRun(kit);
    const H = run.model.hiddenSize;
    const rows = 3;
    const data = Buffer.alloc(rows * H * 4);
    const parts = 3;
    const size = Math.ceil(data.length / parts);
    const probe = new FrameProbe(kit.address, { runId: run.runId, source: 1 - run.rank, connection: 96 });
    try {
      for (let p = 0; p < parts; p++) {
        const piece = data.subarray(p * size, Math.min(data.length, (p + 1) * size));
        const message = frame(run, 20, {
          shape: [rows, H],
          data: piece,
          part: p,
          parts,
          expertIds: p === 0 ? Buffer.from(new Int32Array([0, 0, 1]).buffer) : Buffer.alloc(0),
        });
        const error = await ask(probe, `part ${p} of ${parts} (F32 [${rows}, ${H}], ${piece.length} of ${data.length} data bytes)`, message);
        if (error) throw new CheckFailure(`refused part ${p} of ${parts}: "${error}"; a payload may come in parts, part p carrying data bytes [p*ceil(N/parts), ...)`);
      }
      const again = await ask(probe, 'part 1 again', frame(run, 20, { shape: [rows, H], data: data.subarray(size, 2 * size), part: 1, parts }));
      if (!again) throw new CheckFailure('accepted part 1 of a frame twice; a part that arrived already is refused');
      return `3 parts acknowledged in order; part 1 again refused: "${again}"`;
    } finally {
      probe.close();
    }
  },
};
