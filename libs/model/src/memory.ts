/**
 * What a run of `model` on `train` needs in memory, estimated before anything is allocated, so
 * a config that cannot fit (`hiddenSize: 1e9`) is refused up front naming the field, instead of
 * dying seconds later with `RangeError: Invalid typed array length` in some process.
 *
 * The estimate is the largest single process of a run: the scheduler (or the reference trainer
 * with `checkReference`) holds the whole model with its training state; a worker holds less.
 * All values are float32 (4 bytes):
 *
 *   P          = 2·V·H + H + layers·(H + H·E + E + (E + shared)·3·H·F)       parameters
 *   state      = 4·P                                 parameters, gradients, AdamW m and v
 *   activation = B·L·(V + layers·(6·H + 3·F·(topK + shared)))       one step's activations
 *   total      = 4 bytes · (state + activation)
 *
 * V vocabSize, H hiddenSize, F expertFfnSize, E routedExperts, B batchSequences, L seqLen.
 */
import { ConfigError } from './config-error';
import type { ModelConfig, TrainConfig } from './config';

/** Largest element count of one Float32Array V8 allocates (2^32 - 1 bytes / 4, rounded down). */
export const MAX_TENSOR_ELEMENTS = Math.floor((2 ** 32 - 1) / 4);

export interface MemoryEstimate {
  /** Parameters of the whole model (P). */
  params: number;
  /** Largest single tensor, elements. */
  largestTensor: number;
  /** Bytes the largest process of the run holds (see the file comment). */
  bytes: number;
}

type Sizes = Pick<ModelConfig, 'vocabSize' | 'hiddenSize' | 'expertFfnSize' | 'routedExperts' | 'sharedExperts' | 'topK' | 'layers'> &
  Pick<TrainConfig, 'batchSequences' | 'seqLen'>;

function estimate(s: Sizes): MemoryEstimate {
  const { vocabSize: V, hiddenSize: H, expertFfnSize: F, routedExperts: E, sharedExperts: S, topK: k, layers, batchSequences: B, seqLen: L } = s;
  const params = 2 * V * H + H + layers * (H + H * E + E + (E + S) * 3 * H * F);
  const activation = B * L * (V + layers * (6 * H + 3 * F * (k + S)));
  return { params, largestTensor: Math.max(V * H, H * F, H * E, B * L * V), bytes: 4 * (4 * params + activation) };
}

/** The estimate for `model` on `train` (no allocation). */
export function estimateMemory(model: ModelConfig, train: Pick<TrainConfig, 'batchSequences' | 'seqLen'>): MemoryEstimate {
  return estimate({ ...model, batchSequences: train.batchSequences, seqLen: train.seqLen });
}

const FIELDS: { key: keyof Sizes; path: string }[] = [
  { key: 'hiddenSize', path: 'model.hiddenSize' },
  { key: 'expertFfnSize', path: 'model.expertFfnSize' },
  { key: 'vocabSize', path: 'model.vocabSize' },
  { key: 'routedExperts', path: 'model.routedExperts' },
  { key: 'layers', path: 'model.layers' },
  { key: 'sharedExperts', path: 'model.sharedExperts' },
  { key: 'topK', path: 'model.topK' },
  { key: 'batchSequences', path: 'train.batchSequences' },
  { key: 'seqLen', path: 'train.seqLen' },
];

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 3 : 1)} GiB`;

/**
 * Refuses a run whose estimate exceeds `limitBytes`, or whose largest tensor cannot be allocated
 * at all, naming the field that weighs most (the one whose halving saves the most bytes).
 *
 * @throws ConfigError (rule "memory"), e.g. `model.hiddenSize=1000000000 makes the run need
 *   about 119209.3 GiB (3.2e10 parameters), over the limit of 8.0 GiB (MOE_MEMORY_LIMIT_MB) ...`
 */
export function checkMemory(model: ModelConfig, train: Pick<TrainConfig, 'batchSequences' | 'seqLen'>, limitBytes: number, limitSource = 'the memory limit'): MemoryEstimate {
  const sizes: Sizes = { ...model, batchSequences: train.batchSequences, seqLen: train.seqLen };
  const found = estimate(sizes);
  const tooBig = found.largestTensor > MAX_TENSOR_ELEMENTS;
  if (!tooBig && found.bytes <= limitBytes) return found;
  const weighs = FIELDS.map(({ key, path }) => ({ path, key, saved: found.bytes - estimate({ ...sizes, [key]: sizes[key] / 2 }).bytes })).sort((a, b) => b.saved - a.saved)[0]!;
  const field = `${weighs.path}=${sizes[weighs.key]}`;
  const message = tooBig
    ? `${field} makes a tensor of ${found.largestTensor.toExponential(2)} values, more than one array can hold (${MAX_TENSOR_ELEMENTS}); make ${weighs.path} smaller`
    : `${field} makes the run need about ${gib(found.bytes)} (${found.params.toExponential(2)} parameters with gradients and AdamW state, ` +
      `and one step's activations), over ${limitSource} of ${gib(limitBytes)}; make ${weighs.path} smaller or raise the limit`;
  throw new ConfigError([{ field: weighs.path, rule: 'memory', message }]);
}
