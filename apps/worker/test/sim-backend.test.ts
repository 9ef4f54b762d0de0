import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { TINY_MODEL, TINY_TRAIN, initParams, parseModelConfig, type ModelConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import type { MicroBatch, Shard } from '../src/backend';
import { createBackend } from '../src/backends/create-backend';
import { SimBackend, SimOptionsError, SimShapeError, parseSimOptions } from '../src/backends/sim/index';
import { UnknownDeviceProfileError } from '@moe/sim';
import { InvalidRequestError } from '../src/errors';
import { shardOf as shardFor } from './support/shard';

const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2 });
const WORLD = 4;
const OWNER = [0, 0, 1, 1, 2, 2, 3, 3];

/** Rank `rank`'s shard of a fresh tiny model, with `backendOptions`. */
function shardOf(rank: number, backendOptions: Record<string, unknown>, config: ModelConfig = model): Shard {
  return shardFor({ init: initParams(config), model: config, optimizer: TINY_TRAIN.optimizer, owner: OWNER, rank, world: WORLD, seqLen: 16, runId: 'sim-test', backendOptions });
}

const batchOf = (step: number, tokens: number): MicroBatch => ({
  step,
  microBatch: 0,
  microBatches: 1,
  stepTokens: tokens,
  inputs: Int32Array.from({ length: tokens }, (_, i) => i % model.vocabSize),
  targets: Int32Array.from({ length: tokens }, (_, i) => (i + 1) % model.vocabSize),
  globalTokens: tokens * WORLD,
  globalSequences: (tokens * WORLD) / 16,
});

const SMALL = { hiddenSize: 64, expertFfnSize: 128, attention: { heads: 2 }, seqLen: 16, vocabSize: 512 };

describe('sim backendOptions', () => {
  it('names the field and the value that is wrong', () => {
    expect(() => parseSimOptions({ profile: 'H800', dilation: 0.5 })).toThrow(/backendOptions\.dilation=0\.5: Too small/);
    expect(() => parseSimOptions({ profile: 'H800' })).toThrow(/backendOptions\.dilation/);
    expect(() => parseSimOptions({ profile: 'H800', dilation: 1, model: { hiddenSize: -3 } })).toThrow(/backendOptions\.model\.hiddenSize=-3/);
    expect(() => parseSimOptions({ profile: 'H800', dilation: 1, tokensPerRank: 2.5 })).toThrow(/backendOptions\.tokensPerRank=2\.5/);
    expect(() => parseSimOptions({ profile: 'H800', dilation: 1, dialtion: 3 })).toThrow(/dialtion/);
    expect(() => parseSimOptions({ profile: 'H800', dilation: 1 })).not.toThrow();
    expect(() => parseSimOptions({ profile: 'H800', dilation: 0 })).toThrow(SimOptionsError);
    expect(() => parseSimOptions({ profile: 'H800', dilation: 0 })).toThrow(InvalidRequestError);
  });

  it('requires a known profile and lists the known ones', () => {
    expect(() => parseSimOptions({ dilation: 1 })).toThrow(/backendOptions\.profile is required/);
    expect(() => parseSimOptions({ profile: 'TPUv5', dilation: 1 })).toThrow(UnknownDeviceProfileError);
    expect(() => parseSimOptions({ profile: 'TPUv5', dilation: 1 })).toThrow(/known profiles: H800, H100, H200, A100/);
    expect(parseSimOptions({ dilation: 1 }, 'H200').profile.name).toBe('H200');
    expect(() => parseSimOptions({ profile: 'A100', dilation: 1, model: { gemmDtype: 'fp8' } })).toThrow(
      /backendOptions\.model\.gemmDtype="fp8": device A100 has no fp8/,
    );
  });

  it('fills defaults: DeepSeek-V3 layer, the profile node size, scale 1', () => {
    const o = parseSimOptions({ profile: 'H100', dilation: 10 });
    expect(o).toMatchObject({ dilation: 10, nodeSize: 8, computeScale: 1, seed: 0, linkSharing: 'port', tokensPerRank: undefined });
    expect(o.model.hiddenSize).toBe(7168);
  });
});

describe('SimBackend', () => {
  it('is what createBackend("sim") returns', () => {
    expect(createBackend('sim')).toBeInstanceOf(SimBackend);
    expect(createBackend('sim').name).toBe('sim');
  });

  it('loads the real shard, models H, and reports its profile and links', async () => {
    const backend = new SimBackend();
    expect(backend.deviceProfile).toBe('');
    const checksum = await backend.load(shardOf(1, { profile: 'H800', dilation: 3, model: SMALL, nodeSize: 2 }));
    expect(checksum).toMatch(/./);
    expect(backend.deviceProfile).toBe('H800');
    expect(backend.hiddenSize()).toBe(64);
    expect(backend.topK()).toBe(2);
    expect(backend.linkModel()).toEqual({
      nodeSize: 2,
      dilation: 3,
      intra: { bandwidthGBps: 200, latencyUs: 2 },
      inter: { bandwidthGBps: 50, latencyUs: 5 },
      sharing: 'port',
    });
    await expect(new SimBackend().load(shardOf(0, { profile: 'H800', dilation: -1 }))).rejects.toThrow(/backendOptions\.dilation=-1/);
  });

  it('routes T rows of H values to the real experts, k distinct per token, reproducibly', async () => {
    const a = new SimBackend();
    const b = new SimBackend();
    const options = { profile: 'H800', dilation: 1, model: SMALL, seed: 5 };
    await a.load(shardOf(2, options));
    await b.load(shardOf(2, options));
    await a.beginStep(batchOf(3, 40));
    await b.beginStep(batchOf(3, 40));
    const ra = await a.route(1);
    const rb = await b.route(1);
    expect(ra.h.length).toBe(40 * 64);
    expect(ra.expertIds.length).toBe(40 * 2);
    expect([...ra.expertIds]).toEqual([...rb.expertIds]);
    for (let t = 0; t < 40; t++) expect(ra.expertIds[2 * t]).not.toBe(ra.expertIds[2 * t + 1]);
    expect(Math.min(...ra.expertIds)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...ra.expertIds)).toBeLessThan(8);
    const counts = await a.expertCounts();
    expect(counts.length).toBe(2 * 8);
    expect(counts.subarray(8).reduce((s, c) => s + c, 0)).toBe(80);
    expect(counts.subarray(0, 8).reduce((s, c) => s + c, 0)).toBe(0);
  });

  it('spreads the routing near-uniformly over the experts', async () => {
    const backend = new SimBackend();
    await backend.load(shardOf(0, { profile: 'H800', dilation: 1, model: SMALL, tokensPerRank: 4000 }));
    await backend.beginStep(batchOf(0, 16));
    const { h, expertIds } = await backend.route(0);
    expect(h.length).toBe(4000 * 64); // tokensPerRank rows, not the batch's 16
    const counts = new Array<number>(8).fill(0);
    for (const e of expertIds) counts[e]!++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it('waits each op its modeled time on its device thread, and records prediction and measurement', async () => {
    const backend = new SimBackend();
    await backend.load(shardOf(0, { profile: 'H800', dilation: 1, model: SMALL, computeScale: 1 }));
    const expertsMs = backend.costModel().ms(backend.costModel().experts(30));
    const dilation = 40 / expertsMs; // makes the experts op take about 40 ms
    await backend.load(shardOf(0, { profile: 'H800', dilation, model: SMALL }));
    await backend.beginStep(batchOf(0, 16));
    const rows = [{ source: 1, rows: new Float32Array(30 * 64), expertIds: new Int32Array(30) }];
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    const out = await backend.experts(0, 0, rows);
    clearInterval(ticker);
    expect(out.map((o) => o.length)).toEqual([30 * 64]);
    // The wait is a timer, not a busy loop: a timer of this test fired during it. (How long it
    // took is a measurement, recorded below, not asserted: timers may fire a little early.)
    expect(ticks).toBeGreaterThan(0);
    const record = backend.stepRecords().find((r) => r.kind === 'experts')!;
    expect(record.modeledMs).toBeCloseTo(40, 6);
    expect(record.measuredMs).toBeGreaterThan(0);
    expect(record.flops).toBe(2 * 30 * 3 * 64 * 128);
    await backend.close();
  });

  it("measures an op on the device's clock: an event loop blocked for longer does not lengthen it", async () => {
    const backend = new SimBackend();
    await backend.load(shardOf(0, { profile: 'H800', dilation: 1, model: SMALL, computeScale: 1 }));
    const dilation = 20 / backend.costModel().ms(backend.costModel().experts(30)); // a 20 ms experts op
    await backend.load(shardOf(0, { profile: 'H800', dilation, model: SMALL }));
    await backend.beginStep(batchOf(0, 16));
    const rows = [{ source: 1, rows: new Float32Array(30 * 64), expertIds: new Int32Array(30) }];
    const running = backend.experts(0, 0, rows);
    await new Promise((resolve) => setTimeout(resolve, 2)); // issued: the device thread has it
    const blockedUntil = performance.now() + 400; // the data plane's loop busy framing bytes, say
    while (performance.now() < blockedUntil) {}
    await running;
    const record = backend.stepRecords().find((r) => r.kind === 'experts')!;
    const span = backend.deviceTiming()!;
    expect(record.modeledMs).toBeCloseTo(20, 6);
    expect(record.measuredMs).toBeGreaterThanOrEqual(19.9);
    // On the event loop's timers the op would have measured the whole 400 ms block.
    expect(record.measuredMs).toBeLessThan(200);
    expect(span.endMs - span.startMs).toBeCloseTo(record.measuredMs, 6);
    expect(span.modeledMs).toBe(record.modeledMs);
    await backend.close();
  });

  // Where the process may (CAP_SYS_NICE, chrt installed), the device thread runs in the
  // real-time class, so a host whose cores are all busy still wakes it on time.
  const mayRealTime = (() => {
    try {
      execFileSync('chrt', ['--version'], { stdio: 'ignore' });
      const caps = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
      return caps !== undefined && (BigInt(`0x${caps}`) & (1n << 23n)) !== 0n;
    } catch {
      return false;
    }
  })();
  it.skipIf(!mayRealTime)('runs the device thread in the real-time class where the host allows it', async () => {
    const backend = new SimBackend();
    await backend.load(shardOf(0, { profile: 'H800', dilation: 1, model: SMALL, computeScale: 1 }));
    await backend.beginStep(batchOf(0, 16));
    const { policy, tid } = backend.deviceScheduling()!;
    expect(policy).toBe('fifo');
    // The kernel's view of that thread: policy SCHED_FIFO (1), real-time priority 1; the test's own thread: neither.
    const sched = (t: number | string) => {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 on
      return { policy: fields[38], rtPriority: fields[37] }; // fields 41 and 40
    };
    expect(sched(tid!)).toEqual({ policy: '1', rtPriority: '1' });
    expect(sched(process.pid)).toEqual({ policy: '0', rtPriority: '0' });
    await backend.close();
  });

  it('does no learning: fixed loss, unchanged checksum, sizes the real all-reduce expects', async () => {
    const backend = new SimBackend();
    const checksum = await backend.load(shardOf(0, { profile: 'A100', dilation: 1, model: SMALL }));
    await backend.beginStep(batchOf(0, 16));
    for (let l = 0; l < 2; l++) {
      await backend.route(l);
      await backend.sharedExperts(l);
      await backend.combineOutputs(l, { form: 'slots', rows: new Float32Array(16 * 2 * 64) });
    }
    const loss = await backend.lossAndHeadBackward();
    expect(loss.lossSum).toBeCloseTo((Math.log(model.vocabSize) * 16) / (16 * WORLD), 9);
    expect(loss.auxLoss).toBe(0);
    const dSlots = await backend.combineOutputsBackward(1);
    expect(dSlots.form).toBe('slots');
    expect(dSlots.rows.length).toBe(16 * 2 * 64);
    const grads = await backend.gradientsToReduce();
    const dense = (await backend.snapshot()).dense.filter((p) => p.trainable).reduce((n, p) => n + p.tensor.data.length, 0);
    expect(grads.length).toBe(dense + 2 * 8);
    expect((await backend.applyUpdate(grads)).checksum).toBe(checksum);
    await expect(backend.applyUpdate(new Float32Array(3))).rejects.toThrow(SimShapeError);
  });

  it('rejects arrays of the wrong size, naming the op and the numbers', async () => {
    const backend = new SimBackend();
    await backend.load(shardOf(0, { profile: 'H800', dilation: 1, model: SMALL }));
    await backend.beginStep(batchOf(0, 16));
    await expect(backend.combineOutputs(0, { form: 'slots', rows: new Float32Array(10) })).rejects.toThrow(
      /combineOutputs layer 0: 10 values, expected S=32 slots x H=64 = 2048/,
    );
    // Summed per token by the hierarchical all-to-all: one row per token.
    await expect(backend.combineOutputs(0, { form: 'tokens', rows: new Float32Array(32 * 64) })).rejects.toThrow(
      /combineOutputs layer 0: 2048 values, expected T=16 tokens x H=64 = 1024/,
    );
    await expect(
      backend.experts(0, 1, [{ source: 3, rows: new Float32Array(64), expertIds: new Int32Array(2) }]),
    ).rejects.toThrow(/experts layer 0 chunk 1: rows from rank 3 have 64 values, expected 2 rows x H=64 = 128/);
  });

  it("models an expert backward split in two: input gradients then weight gradients, each the forward's cost, together the whole backward's", async () => {
    const backend = new SimBackend();
    await backend.load(shardOf(0, { profile: 'H800', dilation: 1, model: SMALL }));
    await backend.beginStep(batchOf(0, 16));
    const rows = [{ source: 1, rows: new Float32Array(30 * 64), expertIds: new Int32Array(30) }];
    await expect(backend.expertsWeightGrad(0, 0, 0)).rejects.toThrow(/expertsWeightGrad of layer 0, chunk 0, micro-batch 0 before its expertsInputGrad/);
    expect((await backend.expertsInputGrad(0, 0, rows, 0)).map((o) => o.length)).toEqual([30 * 64]);
    await backend.expertsWeightGrad(0, 0, 0);
    await expect(backend.expertsWeightGrad(0, 0, 0)).rejects.toThrow(/before its expertsInputGrad \(or twice\)/);
    await backend.expertsBackward(0, 0, rows, 0);
    const [dgrad, wgrad, whole] = backend.stepRecords().filter((r) => r.kind !== 'begin');
    expect([dgrad!.kind, wgrad!.kind, whole!.kind]).toEqual(['experts_dgrad', 'experts_wgrad', 'experts_bwd']);
    expect(dgrad!.flops).toBe(2 * 30 * 3 * 64 * 128);
    expect(wgrad!.flops).toBe(dgrad!.flops);
    expect(dgrad!.modeledMs + wgrad!.modeledMs).toBeCloseTo(whole!.modeledMs, 9);
    await backend.close();
  });
});

