/**
 * Model and training configs: plain typed objects, validated by zod schemas with defaults, then
 * by cross-field rules. Every problem is reported (all at once) with its field path and numbers:
 *   `model.hiddenSize must be a positive integer, got 31.5`
 *   `top_k=9 exceeds routed experts=8 (model.topK)`
 * Unknown keys are refused too (a typo must not silently fall back to a default).
 * Missing fields take the defaults, which are the values of TINY_MODEL / TINY_TRAIN.
 */
import { z } from 'zod';
import { ConfigError, type ConfigProblem } from './config-error';

export { ConfigError, type ConfigProblem };

/** How router logits become scores: softmax over the experts, or an independent sigmoid each. */
export type ScoreFunction = 'softmax' | 'sigmoid';
/**
 * Load balancing: `none`; `aux` = sequence-wise auxiliary loss (weight auxLossAlpha);
 * `bias` = auxiliary-loss-free bias on the selection scores, moved by biasUpdateSpeed per step.
 */
export type BalancingKind = 'none' | 'aux' | 'bias';

export interface ModelConfig {
  /** V: tokens in the vocabulary. */
  vocabSize: number;
  /** H: width of the residual stream. */
  hiddenSize: number;
  /** F: inner width of each expert's SwiGLU FFN (routed and shared). */
  expertFfnSize: number;
  /** E: routed experts per layer. */
  routedExperts: number;
  /** Shared experts per layer (applied to every token; 0 allowed). */
  sharedExperts: number;
  /** k: routed experts per token. */
  topK: number;
  /** MoE layers. */
  layers: number;
  scoreFunction: ScoreFunction;
  balancing: BalancingKind;
  /** Weight of the sequence-wise aux loss (used when balancing is 'aux'). */
  auxLossAlpha: number;
  /** Bias step per update (used when balancing is 'bias'), in score units. */
  biasUpdateSpeed: number;
  /** Seed of the parameter initialization. */
  seed: number;
  /** Epsilon of RMSNorm, added to the mean square. */
  rmsEps: number;
  /**
   * G: groups of routed experts for node-limited routing (group g = experts g·E/G .. (g+1)·E/G - 1,
   * one node's experts); 1 = no grouping. Must divide routedExperts.
   */
  routerGroups: number;
  /** M: groups a token may route to (1..routerGroups); topK must fit in M groups. */
  routerGroupTopK: number;
}

export interface OptimizerConfig {
  learningRate: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (AdamW), per unit of learning rate. */
  weightDecay: number;
}

export interface TrainConfig {
  /** B: sequences in the global batch of a step. */
  batchSequences: number;
  /** L: tokens per sequence. */
  seqLen: number;
  steps: number;
  /** Seed of the synthetic data (Markov chain and batches). */
  dataSeed: number;
  optimizer: OptimizerConfig;
}

/**
 * The tiny model the tests and demos use: small enough to train to the data's entropy in a few
 * seconds on one core, big enough to have real routing (8 experts, top-2, a shared expert).
 */
export const TINY_MODEL: ModelConfig = Object.freeze({
  vocabSize: 16,
  hiddenSize: 32,
  expertFfnSize: 32,
  routedExperts: 8,
  sharedExperts: 1,
  topK: 2,
  layers: 2,
  scoreFunction: 'softmax',
  balancing: 'bias',
  auxLossAlpha: 1e-3,
  biasUpdateSpeed: 1e-3,
  seed: 1,
  rmsEps: 1e-6,
  routerGroups: 1,
  routerGroupTopK: 1,
});

export const TINY_OPTIMIZER: OptimizerConfig = Object.freeze({
  learningRate: 1e-2,
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-8,
  weightDecay: 0,
});

export const TINY_TRAIN: TrainConfig = Object.freeze({
  batchSequences: 8,
  seqLen: 32,
  steps: 100,
  dataSeed: 7,
  optimizer: TINY_OPTIMIZER,
});

/** One field: its zod schema (with default), the rule's name, and the rule in words. */
interface FieldRule {
  schema: z.ZodType;
  rule: string;
  words: string;
}

const positiveInt = (d: number): FieldRule => ({ schema: z.number().int().positive().default(d), rule: 'positive-integer', words: 'a positive integer' });
const intAtLeast = (min: number, d: number, why: string): FieldRule => ({
  schema: z.number().int().min(min).default(d),
  rule: `integer>=${min}`,
  words: `an integer >= ${min} (${why})`,
});
const nonNegativeInt = (d: number): FieldRule => ({
  schema: z.number().int().nonnegative().default(d),
  rule: 'non-negative-integer',
  words: 'a non-negative integer',
});
const positiveNumber = (d: number): FieldRule => ({ schema: z.number().positive().default(d), rule: 'positive', words: 'a positive finite number' });
const nonNegativeNumber = (d: number): FieldRule => ({
  schema: z.number().nonnegative().default(d),
  rule: 'non-negative',
  words: 'a non-negative finite number',
});
const unitInterval = (d: number): FieldRule => ({ schema: z.number().min(0).lt(1).default(d), rule: 'in-[0,1)', words: 'a number in [0, 1)' });
const oneOf = <T extends string>(values: readonly [T, ...T[]], d: T): FieldRule => ({
  schema: z.enum(values).default(d as never),
  rule: 'one-of',
  words: `one of ${values.map((v) => `'${v}'`).join(', ')}`,
});

const MODEL_FIELDS: Record<keyof ModelConfig, FieldRule> = {
  vocabSize: intAtLeast(2, TINY_MODEL.vocabSize, 'the synthetic data needs at least 2 tokens'),
  hiddenSize: positiveInt(TINY_MODEL.hiddenSize),
  expertFfnSize: positiveInt(TINY_MODEL.expertFfnSize),
  routedExperts: positiveInt(TINY_MODEL.routedExperts),
  sharedExperts: nonNegativeInt(TINY_MODEL.sharedExperts),
  topK: positiveInt(TINY_MODEL.topK),
  layers: positiveInt(TINY_MODEL.layers),
  scoreFunction: oneOf(['softmax', 'sigmoid'], TINY_MODEL.scoreFunction),
  balancing: oneOf(['none', 'aux', 'bias'], TINY_MODEL.balancing),
  auxLossAlpha: nonNegativeNumber(TINY_MODEL.auxLossAlpha),
  biasUpdateSpeed: nonNegativeNumber(TINY_MODEL.biasUpdateSpeed),
  seed: nonNegativeInt(TINY_MODEL.seed),
  rmsEps: positiveNumber(TINY_MODEL.rmsEps),
  routerGroups: positiveInt(TINY_MODEL.routerGroups),
  routerGroupTopK: positiveInt(TINY_MODEL.routerGroupTopK),
};

const OPTIMIZER_FIELDS: Record<keyof OptimizerConfig, FieldRule> = {
  learningRate: positiveNumber(TINY_OPTIMIZER.learningRate),
  beta1: unitInterval(TINY_OPTIMIZER.beta1),
  beta2: unitInterval(TINY_OPTIMIZER.beta2),
  eps: positiveNumber(TINY_OPTIMIZER.eps),
  weightDecay: nonNegativeNumber(TINY_OPTIMIZER.weightDecay),
};

const TRAIN_FIELDS: Record<Exclude<keyof TrainConfig, 'optimizer'>, FieldRule> = {
  batchSequences: positiveInt(TINY_TRAIN.batchSequences),
  seqLen: positiveInt(TINY_TRAIN.seqLen),
  steps: nonNegativeInt(TINY_TRAIN.steps),
  dataSeed: nonNegativeInt(TINY_TRAIN.dataSeed),
};

/** A value as it reads in a message: strings quoted, objects as JSON. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value == null) return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates `input` against `fields` (and nothing else): returns the values with defaults where
 * valid, and a problem per broken field (in field order) plus one per unknown key. `extra` names
 * keys validated elsewhere (nested objects).
 */
function parseFields(
  input: unknown,
  path: string,
  fields: Record<string, FieldRule>,
  extra: readonly string[] = [],
): { values: Record<string, unknown>; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const values: Record<string, unknown> = {};
  if (input === undefined) input = {};
  if (!isPlainObject(input)) {
    return { values, problems: [{ field: path, rule: 'object', message: `${path} must be an object, got ${show(input)}` }] };
  }
  const shape = Object.fromEntries([
    ...Object.entries(fields).map(([k, f]) => [k, f.schema]),
    ...extra.map((k) => [k, z.unknown()]),
  ]);
  const result = z.strictObject(shape).safeParse(input);
  const bad = new Set<string>();
  const unknownKeys: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') unknownKeys.push(...issue.keys);
      else if (issue.path.length > 0) bad.add(String(issue.path[0]));
    }
  }
  for (const [key, f] of Object.entries(fields)) {
    const field = `${path}.${key}`;
    if (bad.has(key)) {
      problems.push({ field, rule: f.rule, message: `${field} must be ${f.words}, got ${show(input[key])}` });
    } else {
      values[key] = result.success ? (result.data as Record<string, unknown>)[key] : f.schema.parse(input[key]);
    }
  }
  for (const key of unknownKeys) {
    const known = [...Object.keys(fields), ...extra].join(', ');
    problems.push({ field: `${path}.${key}`, rule: 'known-field', message: `${path}.${key} is not a known field (known: ${known})` });
  }
  return { values, problems };
}

/**
 * Validates a model config (plain object; missing fields take TINY_MODEL's values) and returns a
 * fresh ModelConfig. Cross-field rules: topK <= routedExperts, and node-limited routing's (groupProblems). `path` prefixes field names in
 * messages. Throws ConfigError listing every problem.
 */
export function parseModelConfig(input: unknown, path = 'model'): ModelConfig {
  const { values, problems } = parseFields(input, path, MODEL_FIELDS);
  const topK = values['topK'];
  const experts = values['routedExperts'];
  if (typeof topK === 'number' && typeof experts === 'number' && topK > experts) {
    problems.push({
      field: `${path}.topK`,
      rule: 'top-k-within-experts',
      message: `top_k=${topK} exceeds routed experts=${experts} (${path}.topK)`,
    });
  }
  problems.push(...groupProblems(values, path));
  if (problems.length > 0) throw new ConfigError(problems);
  return values as unknown as ModelConfig;
}

/** Cross-field rules of node-limited routing: G divides E, 1 <= M <= G, and k experts fit in M groups. */
function groupProblems(values: Record<string, unknown>, path: string): ConfigProblem[] {
  const { routedExperts: E, topK: k, routerGroups: G, routerGroupTopK: M } = values;
  if (typeof E !== 'number' || typeof k !== 'number' || typeof G !== 'number' || typeof M !== 'number') return [];
  if (k > E) return []; // already reported as top-k-within-experts
  if (E % G !== 0) {
    return [
      {
        field: `${path}.routerGroups`,
        rule: 'groups-divide-experts',
        message: `routerGroups=${G} does not divide routed experts=${E} (${path}.routerGroups): every group must hold the same number of experts`,
      },
    ];
  }
  if (M > G) {
    return [
      {
        field: `${path}.routerGroupTopK`,
        rule: 'group-top-k-within-groups',
        message: `routerGroupTopK=${M} exceeds routerGroups=${G} (${path}.routerGroupTopK)`,
      },
    ];
  }
  if (k > M * (E / G)) {
    return [
      {
        field: `${path}.topK`,
        rule: 'top-k-within-groups',
        message: `top_k=${k} exceeds the ${M * (E / G)} experts of routerGroupTopK=${M} groups of ${E / G} (${path}.topK): raise routerGroupTopK or lower topK`,
      },
    ];
  }
  return [];
}

/** Validates an optimizer config (missing fields take TINY_OPTIMIZER's values). Throws ConfigError. */
export function parseOptimizerConfig(input: unknown, path = 'optimizer'): OptimizerConfig {
  const { values, problems } = parseFields(input, path, OPTIMIZER_FIELDS);
  if (problems.length > 0) throw new ConfigError(problems);
  return values as unknown as OptimizerConfig;
}

/**
 * Validates a training config, its `optimizer` included (missing fields take TINY_TRAIN's
 * values). Throws ConfigError listing every problem, e.g. `train.optimizer.learningRate must be
 * a positive finite number, got -0.1`.
 */
export function parseTrainConfig(input: unknown, path = 'train'): TrainConfig {
  const top = parseFields(input, path, TRAIN_FIELDS, ['optimizer']);
  const nested = isPlainObject(input) ? input['optimizer'] : undefined;
  const optimizer = parseFields(nested, `${path}.optimizer`, OPTIMIZER_FIELDS);
  const problems = [...top.problems, ...(top.problems.some((p) => p.field === path) ? [] : optimizer.problems)];
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...(top.values as Omit<TrainConfig, 'optimizer'>), optimizer: optimizer.values as unknown as OptimizerConfig };
}
