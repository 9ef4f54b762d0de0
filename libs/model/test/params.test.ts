/** Parameters: deterministic init, stable names, and a checksum over the float bytes. */
import { describe, expect, it } from 'vitest';
import { checksumTensors, denseParams, expertParams, initParams, parseModelConfig, tensorFrom, TINY_MODEL } from '../src/index';

/** FNV-1a 64 with BigInt: the definition the fast version must match. */
function fnv1a64(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, '0');
}

describe('initParams', () => {
  it('is deterministic from the seed and has the documented shapes', () => {
    const a = initParams(TINY_MODEL);
    const b = initParams(TINY_MODEL);
    const c = initParams({ ...TINY_MODEL, seed: 2 });
    const all = (p: typeof a) => [...denseParams(p), ...p.experts.flat().flatMap(expertParams)].map((q) => q.tensor);
    expect(checksumTensors(all(a))).toBe(checksumTensors(all(b)));
    expect(checksumTensors(all(a))).not.toBe(checksumTensors(all(c)));
    const { vocabSize: V, hiddenSize: H, expertFfnSize: F, routedExperts: E } = TINY_MODEL;
    expect(a.embedding.shape).toEqual([V, H]);
    expect(a.layers[0]!.router.shape).toEqual([H, E]);
    expect(a.experts[1]![7]!.w2.shape).toEqual([F, H]);
    expect(a.head.shape).toEqual([H, V]);
    expect(Array.from(a.layers[0]!.routerBias.data)).toEqual(new Array(E).fill(0));
  });

  it('changing the number of experts leaves the dense tensors as they were', () => {
    const a = initParams(TINY_MODEL);
    const b = initParams(parseModelConfig({ ...TINY_MODEL, routedExperts: 4 }));
    expect(b.embedding.data).toEqual(a.embedding.data);
    expect(b.experts[0]![3]!.w1.data).toEqual(a.experts[0]![3]!.w1.data);
  });
});

describe('denseParams', () => {
  it('names every dense tensor in a stable order; the router bias is not trainable', () => {
    const p = initParams(parseModelConfig({ layers: 2, sharedExperts: 1 }));
    const named = denseParams(p);
    expect(named.map((q) => q.name)).toEqual([
      'embedding',
      'layers.0.norm',
      'layers.0.router',
      'layers.0.router_bias',
      'layers.0.shared.0.w1',
      'layers.0.shared.0.w3',
      'layers.0.shared.0.w2',
      'layers.1.norm',
      'layers.1.router',
      'layers.1.router_bias',
      'layers.1.shared.0.w1',
      'layers.1.shared.0.w3',
      'layers.1.shared.0.w2',
      'final_norm',
      'head',
    ]);
    expect(named.filter((q) => !q.trainable).map((q) => q.name)).toEqual(['layers.0.router_bias', 'layers.1.router_bias']);
    expect(named[0]!.tensor).toBe(p.embedding);
    expect(expertParams(p.experts[0]![0]!).map((q) => q.name)).toEqual(['w1', 'w3', 'w2']);
  });
});

describe('checksumTensors', () => {
  it('is FNV-1a 64 over the float32 bytes of the tensors in order', () => {
    const a = tensorFrom([3], [1.5, -2, 1e-7]);
    const b = tensorFrom([2], [0, 3.25]);
    const bytes = new Uint8Array([...new Uint8Array(a.data.buffer), ...new Uint8Array(b.data.buffer)]);
    expect(checksumTensors([a, b])).toBe(fnv1a64(bytes));
    expect(checksumTensors([])).toBe('cbf29ce484222325');
    expect(checksumTensors([b, a])).not.toBe(checksumTensors([a, b]));
  });
});
