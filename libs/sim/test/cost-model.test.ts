import { describe, expect, it } from 'vitest';
import {
  CostModel,
  DEEPSEEK_V3_LAYER,
  DEVICE_PROFILES,
  UnknownDeviceProfileError,
  UnsupportedDtypeError,
  computeScaleForRatio,
  deviceProfile,
  estimateStep,
  linkModelOf,
  resolveModeledModel,
} from '../src/index';

const deepseek = (gemmDtype: 'fp8' | 'bf16' = 'bf16', profile = 'H800', extra: { computeScale?: number; dilation?: number } = {}) =>
  new CostModel(resolveModeledModel({ gemmDtype }), profile, { worldSize: 64, layers: 1, ...extra });

describe('device profiles', () => {
  it('has H800, H100, H200 and A100 with dense peaks, HBM and link figures', () => {
    for (const name of ['H800', 'H100', 'H200', 'A100']) {
      const p = deviceProfile(name);
      expect(p.tflops.bf16).toBeGreaterThan(100);
      expect(p.hbmGBps).toBeGreaterThan(1000);
      expect(p.intra.bandwidthGBps).toBeGreaterThan(p.inter.bandwidthGBps);
    }
    // The H800 is an H100 with NVLink cut to 400 GB/s (200 each way); the H200 has faster HBM.
    expect(DEVICE_PROFILES.H800!.tflops).toEqual(DEVICE_PROFILES.H100!.tflops);
    expect(DEVICE_PROFILES.H800!.intra.bandwidthGBps).toBe(200);
    expect(DEVICE_PROFILES.H100!.intra.bandwidthGBps).toBe(450);
    expect(DEVICE_PROFILES.H200!.hbmGBps).toBeGreaterThan(DEVICE_PROFILES.H100!.hbmGBps);
    expect(DEVICE_PROFILES.A100!.tflops.fp8).toBeUndefined();
    expect(DEVICE_PROFILES.H800!.inter.bandwidthGBps).toBe(50); // 400 Gb/s IB per GPU
  });

  it('names the known profiles when asked for an unknown one', () => {
    expect(() => deviceProfile('B200')).toThrow(UnknownDeviceProfileError);
    expect(() => deviceProfile('B200')).toThrow(/unknown device profile "B200" \(backendOptions\.profile\); known profiles: H800, H100, H200, A100/);
    expect(() => deviceProfile('B200')).toThrow(UnknownDeviceProfileError);
    expect(deviceProfile('h800').name).toBe('H800');
  });

  it('gives the link model of a profile for the ShapedTransport', () => {
    expect(linkModelOf(deviceProfile('H800'), 8, 100)).toEqual({
      nodeSize: 8,
      dilation: 100,
      intra: { bandwidthGBps: 200, latencyUs: 2 },
      inter: { bandwidthGBps: 50, latencyUs: 5 },
      sharing: 'port',
    });
  });
});

describe('cost model', () => {
  it('counts the DeepSeek-V3 layer parameters: 187M of MLA projections, 44M per expert', () => {
    const c = deepseek();
    expect(c.attentionParams()).toBe(187_105_280);
    expect(c.expertParams()).toBe(3 * 7168 * 2048);
    expect(c.localExperts).toBe(4); // 256 experts over 64 ranks
  });

  it('models routed experts time linearly in the rows they receive (once compute-bound)', () => {
    const c = deepseek();
    const t1 = c.ms(c.experts(8192));
    const t2 = c.ms(c.experts(16384));
    expect(t2 / t1).toBeCloseTo(2, 2);
    // 8192 rows x 6*H*F FLOPs at 989.5 TFLOP/s x 0.6.
    expect(t1).toBeCloseTo((2 * 8192 * 3 * 7168 * 2048) / (989.5e12 * 0.6) * 1e3, 6);
  });

  it('is memory-bound for a handful of rows: the weights must be read anyway', () => {
    const c = deepseek();
    const weightsMs = ((4 * c.expertParams() * 2) / (3350e9)) * 1e3;
    expect(c.ms(c.experts(8))).toBeGreaterThanOrEqual(weightsMs);
    expect(c.ms(c.experts(8))).toBeLessThan(1.1 * weightsMs);
  });

  it('runs fp8 GEMMs about twice as fast as bf16 on the H800', () => {
    const bf16 = deepseek('bf16');
    const fp8 = deepseek('fp8');
    const ratio = bf16.ms(bf16.experts(16384)) / fp8.ms(fp8.experts(16384));
    expect(ratio).toBeGreaterThan(1.9);
    expect(ratio).toBeLessThanOrEqual(2);
    expect(fp8.ms(fp8.route(4096))).toBeLessThan(bf16.ms(bf16.route(4096)));
  });

  it('refuses fp8 on a device without fp8 tensor cores', () => {
    expect(() => deepseek('fp8', 'A100')).toThrow(UnsupportedDtypeError);
    expect(() => deepseek('fp8', 'A100')).toThrow(/A100 has no fp8 tensor cores/);
  });

  it('multiplies every duration by the dilation and the compute scale', () => {
    const base = deepseek();
    const slow = deepseek('bf16', 'H800', { dilation: 1000, computeScale: 3 });
    for (const cost of [base.route(4096), base.experts(100), base.post(4096, 32768), base.update(), base.loss(4096)]) {
      expect(slow.ms(cost)).toBeCloseTo(3000 * base.ms(cost), 6);
    }
  });

  it('makes backward twice the forward, and plausible absolute times for a DeepSeek-V3 layer', () => {
    const c = deepseek('fp8');
    expect(c.ms(c.expertsBackward(16384))).toBeCloseTo(2 * c.ms(c.experts(16384)), 9);
    expect(c.ms(c.routeBackward(4096))).toBeCloseTo(2 * c.ms(c.route(4096)), 9);
    // 4096 tokens of one MLA layer at seq 4096 on an H800: a few ms, not µs and not seconds.
    const route = c.ms(c.route(4096));
    expect(route).toBeGreaterThan(0.5);
    expect(route).toBeLessThan(20);
    // The combine is memory-bound: far cheaper than the experts it follows.
    expect(c.ms(c.post(4096, 4096 * 8))).toBeLessThan(c.ms(c.experts(4096 * 8)) / 10);
  });

  it('keeps DeepSeek-V3 as the default and takes smaller layers', () => {
    expect(resolveModeledModel().hiddenSize).toBe(7168);
    const small = resolveModeledModel({ hiddenSize: 256, attention: { heads: 4 } });
    expect(small).toMatchObject({ hiddenSize: 256, expertFfnSize: 2048, attention: { heads: 4, kvLoraRank: 512 } });
    expect(DEEPSEEK_V3_LAYER.attention.heads).toBe(128);
  });

  it('picks the compute scale that sets a wanted compute-to-communication ratio', () => {
    const model = resolveModeledModel({ hiddenSize: 256, expertFfnSize: 512 });
    const options = { worldSize: 4, layers: 2, dilation: 500 };
    const at1 = estimateStep({ costs: new CostModel(model, 'H800', options), tokens: 128, topK: 2, nodeSize: 2 });
    const scale = computeScaleForRatio(1.5, at1);
    const scaled = estimateStep({ costs: new CostModel(model, 'H800', { ...options, computeScale: scale }), tokens: 128, topK: 2, nodeSize: 2 });
    expect(scaled.computeMs / scaled.commMs).toBeCloseTo(1.5, 6);
    expect(scaled.commMs).toBeCloseTo(at1.commMs, 9);
  });
});
