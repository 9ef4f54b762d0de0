/**
 * Checkpoints: everything a stopped run needs to continue and reproduce the uninterrupted one's
 * losses: the parameters, the AdamW state (m, v per trained tensor, and t), the configs, the
 * number of steps done and their losses. The data needs nothing: `MarkovChain.batch(step, ...)`
 * is a function of the step.
 *
 * File `<dir>/checkpoint.moe`, written atomically (a temp file in the same directory, fsync,
 * rename over the old one), so a crash leaves the previous checkpoint or the new one, whole:
 *
 *   line 1  `MOE-CHECKPOINT 1`
 *   line 2  a JSON header (one line): runId, step (steps done = the next step to run), model,
 *           train, losses, auxLosses, optimizerStep (AdamW t), sha256 (hex, of the body),
 *           bytes (of the body), tensors: [{ kind: "param" | "m" | "v", name, shape, offset }]
 *           (offset in bytes into the body)
 *   body    the tensors' float32 values, little-endian, back to back, in header order
 *
 * Names: parameters as `denseParams` and `routedExpertParams` name them ("embedding",
 * "layers.0.router_bias", "layers.1.experts.5.w2", ...); m and v under their parameter's name.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { namedTensorMsg, namedTensorsFromMsg, type FetchParamsResponseOut, type OptimizerStateMsg } from '@moe/comm';
import { denseParams, initParams, routedExpertParams, type ModelConfig, type ModelParams, type Tensor, type TrainConfig } from '@moe/model';
import { CheckpointError } from '../errors';

export const CHECKPOINT_FILE = 'checkpoint.moe';
const MAGIC = 'MOE-CHECKPOINT 1';

/** AdamW state of the whole model, by parameter name (see the file comment). */
export interface OptimizerSnapshot {
  /** Steps taken (t). */
  t: number;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
}

export interface Checkpoint {
  runId: string;
  /** Steps done: the run resumes with this step. */
  step: number;
  model: ModelConfig;
  train: TrainConfig;
  /** [step] losses and aux losses of the steps done. */
  losses: number[];
  auxLosses: number[];
  params: ModelParams;
  optimizer: OptimizerSnapshot;
}

interface TensorEntry {
  kind: 'param' | 'm' | 'v';
  name: string;
  shape: number[];
  offset: number;
}

interface Header {
  runId: string;
  step: number;
  model: ModelConfig;
  train: TrainConfig;
  losses: number[];
  auxLosses: number[];
  optimizerStep: number;
  sha256: string;
  bytes: number;
  tensors: TensorEntry[];
}

const EXPERT_NAME = /^layers\.(\d+)\.experts\.(\d+)\.(w1|w3|w2)$/;

/** Every parameter of `params` by checkpoint name (the model's own tensors, not copies). */
function namedParams(params: ModelParams): { name: string; tensor: Tensor }[] {
  return [...denseParams(params), ...routedExpertParams(params)];
}

/** Writes `checkpoint` to `<dir>/checkpoint.moe` atomically; returns the file's path. */
export function saveCheckpoint(dir: string, checkpoint: Checkpoint): string {
  mkdirSync(dir, { recursive: true });
  const tensors: TensorEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  const add = (kind: TensorEntry['kind'], name: string, t: Tensor) => {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    tensors.push({ kind, name, shape: [...t.shape], offset });
    chunks.push(Buffer.from(bytes)); // copy: little-endian on every platform Node runs on
    offset += bytes.length;
  };
  for (const p of namedParams(checkpoint.params)) add('param', p.name, p.tensor);
  for (const [name, t] of checkpoint.optimizer.m) add('m', name, t);
  for (const [name, t] of checkpoint.optimizer.v) add('v', name, t);
  const body = Buffer.concat(chunks);
  const header: Header = {
    runId: checkpoint.runId,
    step: checkpoint.step,
    model: checkpoint.model,
    train: checkpoint.train,
    losses: checkpoint.losses,
    auxLosses: checkpoint.auxLosses,
    optimizerStep: checkpoint.optimizer.t,
    sha256: createHash('sha256').update(body).digest('hex'),
    bytes: body.length,
    tensors,
  };
  const path = join(dir, CHECKPOINT_FILE);
  const temp = `${path}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, `${MAGIC}\n${JSON.stringify(header)}\n`);
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  return path;
}

/**
 * Reads `<dir>/checkpoint.moe` (or `dir` itself when it is the file).
 * @throws CheckpointError when it is missing, truncated, not a checkpoint, or its checksum fails
 */
export function loadCheckpoint(dir: string): Checkpoint {
  const path = dir.endsWith('.moe') ? dir : join(dir, CHECKPOINT_FILE);
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (error) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(error as Error).message}`);
  }
  const first = file.indexOf(0x0a);
  const second = first < 0 ? -1 : file.indexOf(0x0a, first + 1);
  if (first < 0 || second < 0 || file.subarray(0, first).toString() !== MAGIC) {
    throw new CheckpointError(`${path} is not a checkpoint (it does not start with "${MAGIC}")`);
  }
  let header: Header;
  try {
    header = JSON.parse(file.subarray(first + 1, second).toString()) as Header;
  } catch (error) {
    throw new CheckpointError(`${path}: the header is not JSON (${(error as Error).message})`);
  }
  const body = file.subarray(second + 1);
  if (body.length !== header.bytes) throw new CheckpointError(`${path}: body has ${body.length} bytes, the header says ${header.bytes} (truncated?)`);
  const sha = createHash('sha256').update(body).digest('hex');
  if (sha !== header.sha256) throw new CheckpointError(`${path}: sha256 of the body is ${sha}, the header says ${header.sha256} (corrupt)`);

  const params = initParams(header.model);
  const slots = new Map(namedParams(params).map((p) => [p.name, p.tensor]));
  const optimizer: OptimizerSnapshot = { t: header.optimizerStep, m: new Map(), v: new Map() };
  const seen = new Set<string>();
  for (const entry of header.tensors) {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (entry.offset + count * 4 > body.length) throw new CheckpointError(`${path}: ${entry.kind} ${entry.name} lies outside the body`);
    const data = new Float32Array(count);
    Buffer.from(data.buffer).set(body.subarray(entry.offset, entry.offset + count * 4));
    if (entry.kind === 'param') {
      const slot = slots.get(entry.name);
      if (!slot) throw new CheckpointError(`${path}: parameter ${entry.name} is not part of the model`);
      if (slot.data.length !== count) throw new CheckpointError(`${path}: ${entry.name} has ${count} values, the model ${slot.data.length}`);
      slot.data.set(data);
      seen.add(entry.name);
    } else {
      optimizer[entry.kind].set(entry.name, { shape: entry.shape, data });
    }
  }
  const missing = [...slots.keys()].filter((n) => !seen.has(n));
  if (missing.length) throw new CheckpointError(`${path}: parameters missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
  return {
    runId: header.runId,
    step: header.step,
    model: header.model,
    train: header.train,
    losses: header.losses,
    auxLosses: header.auxLosses,
    params,
    optimizer,
  };
}

/**
 * The whole model's AdamW state from every rank's FetchParams (with include_optimizer_state):
 * dense entries from rank 0 (replicated), each expert's from its owner.
 */
export function gatherOptimizerState(replies: readonly FetchParamsResponseOut[]): OptimizerSnapshot {
  const out: OptimizerSnapshot = { t: 0, m: new Map(), v: new Map() };
  replies.forEach((reply, rank) => {
    const state = reply.optimizerState;
    if (!state) throw new CheckpointError(`FetchParams on rank ${rank} returned no optimizer state (its backend cannot checkpoint)`);
    if (rank === 0) out.t = state.step;
    else if (state.step !== out.t) throw new CheckpointError(`optimizer step differs: rank 0 has t=${out.t}, rank ${rank} t=${state.step}`);
    for (const kind of ['m', 'v'] as const) {
      for (const [name, t] of namedTensorsFromMsg(state[kind], `FetchParams[rank ${rank}].optimizer_state.${kind}`)) {
        if (rank === 0 || EXPERT_NAME.test(name)) out[kind].set(name, t);
      }
    }
  });
  return out;
}

/** The part of `state` rank `rank` holds (dense entries, and the experts `owner` gives it), as a message. */
export function optimizerStateForRank(state: OptimizerSnapshot, owner: readonly number[], rank: number): OptimizerStateMsg {
  const mine = (name: string) => {
    const e = EXPERT_NAME.exec(name);
    return !e || owner[Number(e[2])] === rank;
  };
  const list = (map: Map<string, Tensor>) =>
    [...map].filter(([name]) => mine(name)).map(([name, t]) => namedTensorMsg(name, t));
  return { step: state.t, m: list(state.m), v: list(state.v) };
}
