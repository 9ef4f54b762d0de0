/**
 * A run's model and training settings: the tiny defaults, a JSON file's fields over them, then
 * the command line's. Everything is validated by `@moe/model`, whose `ConfigError` names the
 * field and the rule, the sizes included: what the run needs in memory against a ceiling
 * (`MOE_MEMORY_LIMIT_MB`, default this machine's memory); a file that is not
 * `{ "model": {...}, "train": {...} }` is a `ConfigFileError`.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { checkMemory, parseModelConfig, parseTrainConfig, TINY_MODEL, TINY_TRAIN, type ModelConfig, type TrainConfig } from '@moe/model';
import { ConfigFileError } from '../errors';

export interface RunConfig {
  model: ModelConfig;
  train: TrainConfig;
}

export interface RunConfigOverrides {
  /** Replaces train.steps. */
  steps?: number;
  /** Replaces model.seed (initial parameters) and train.dataSeed (the batches). */
  seed?: number;
}

export const MEMORY_LIMIT_ENV = 'MOE_MEMORY_LIMIT_MB';

/**
 * The most memory one process of a run may need: `MOE_MEMORY_LIMIT_MB` (MiB), else this machine's
 * memory. A config estimated above it is refused before anything starts.
 */
export function memoryLimit(env: NodeJS.ProcessEnv = process.env): { bytes: number; source: string } {
  const raw = env[MEMORY_LIMIT_ENV];
  if (raw === undefined || raw === '') return { bytes: totalmem(), source: "this machine's memory" };
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb <= 0) throw new ConfigFileError(`${MEMORY_LIMIT_ENV} must be a positive number of MiB, got "${raw}"`);
  return { bytes: mb * 2 ** 20, source: `${MEMORY_LIMIT_ENV}=${raw}` };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Merges `input` (a parsed config file, or `{}`) over TINY_MODEL / TINY_TRAIN, applies the
 * overrides and validates both halves. Fields a file leaves out keep the tiny defaults.
 */
export function resolveRunConfig(input: unknown, overrides: RunConfigOverrides = {}, source = 'config'): RunConfig {
  if (!isObject(input)) throw new ConfigFileError(`${source}: expected an object { "model": {...}, "train": {...} }`);
  const unknown = Object.keys(input).filter((k) => k !== 'model' && k !== 'train');
  if (unknown.length) throw new ConfigFileError(`${source}: unknown top-level field ${unknown.map((k) => `"${k}"`).join(', ')}; only "model" and "train" are allowed`);
  for (const key of ['model', 'train'] as const) {
    if (input[key] !== undefined && !isObject(input[key])) throw new ConfigFileError(`${source}: "${key}" must be an object`);
  }
  const model = (input.model ?? {}) as Record<string, unknown>;
  const train = (input.train ?? {}) as Record<string, unknown>;
  if (train.optimizer !== undefined && !isObject(train.optimizer)) throw new ConfigFileError(`${source}: "train.optimizer" must be an object`);
  const mergedModel: Record<string, unknown> = { ...TINY_MODEL, ...model };
  const mergedTrain: Record<string, unknown> = {
    ...TINY_TRAIN,
    ...train,
    optimizer: { ...TINY_TRAIN.optimizer, ...((train.optimizer as Record<string, unknown> | undefined) ?? {}) },
  };
  if (overrides.steps !== undefined) mergedTrain.steps = overrides.steps;
  if (overrides.seed !== undefined) {
    mergedModel.seed = overrides.seed;
    mergedTrain.dataSeed = overrides.seed;
  }
  const resolved = { model: parseModelConfig(mergedModel, 'model'), train: parseTrainConfig(mergedTrain, 'train') };
  const limit = memoryLimit();
  checkMemory(resolved.model, resolved.train, limit.bytes, limit.source);
  return resolved;
}

/** Reads and resolves a config file (or the defaults when `path` is undefined). */
export function loadRunConfig(path: string | undefined, overrides: RunConfigOverrides = {}): RunConfig {
  if (path === undefined) return resolveRunConfig({}, overrides);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigFileError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  return resolveRunConfig(parsed, overrides, path);
}
