/**
 * The checkpoint format: everything a stopped run needs to continue and reproduce the
 * uninterrupted one's losses (the parameters, the AdamW state, the configs, the steps done and
 * their losses), as bytes. Writing and reading files is the caller's.
 *
 *   line 1  `MOE-CHECKPOINT 1`
 *   line 2  a JSON header (one line): runId, step (steps done = the next step to run), model,
 *           train, losses, auxLosses, optimizerStep (AdamW t), sha256 (hex, of the body),
 *           bytes (of the body), tensors: [{ kind: "param" | "m" | "v", name, shape, offset }]
 *           (offset in bytes into the body)
 *   body    the tensors' float32 values, little-endian, back to back, in header order
 *
 * Names: parameters as `namedParams` names them ("embedding", "layers.0.router_bias",
 * "layers.1.experts.5.w2", ...); m and v under their parameter's name.
 */
import { createHash } from 'node:crypto';
import type { ModelConfig, TrainConfig } from '../config';
import { initParams, namedParams, type ModelParams } from '../params';
import type { Tensor } from '../tensor';

const MAGIC = 'MOE-CHECKPOINT 1';

/** A checkpoint that cannot be read or used (missing, corrupt, or for another model or batch). */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

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

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** `checkpoint` as the bytes of a checkpoint file. */
export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  const tensors: TensorEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  const add = (kind: TensorEntry['kind'], name: string, t: Tensor) => {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    tensors.push({ kind, name, shape: [...t.shape], offset });
    chunks.push(Buffer.from(bytes)); // copy: little-endian on every platform Node runs on
    offset += bytes.length;
  };
  for (const [name, t] of namedParams(checkpoint.params)) add('param', name, t);
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
    sha256: sha256(body),
    bytes: body.length,
    tensors,
  };
  return Buffer.concat([Buffer.from(`${MAGIC}\n${JSON.stringify(header)}\n`), body]);
}

/**
 * The checkpoint in `file` (the bytes of a checkpoint file); `path` names it in errors.
 * @throws CheckpointError when it is truncated, not a checkpoint, its checksum fails, or its
 *   tensors do not fit its model
 */
export function decodeCheckpoint(file: Buffer, path: string): Checkpoint {
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
  const sha = sha256(body);
  if (sha !== header.sha256) throw new CheckpointError(`${path}: sha256 of the body is ${sha}, the header says ${header.sha256} (corrupt)`);

  const params = initParams(header.model);
  const slots = namedParams(params);
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
