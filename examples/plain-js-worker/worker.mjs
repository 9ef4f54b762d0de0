#!/usr/bin/env node
// A minimal worker in plain JavaScript, written from proto/moe/v1/moe.proto and
// docs/custom-workers.md alone: it imports nothing from this repository's code, only
// @grpc/grpc-js, @grpc/proto-loader and the .proto files. It registers with a scheduler, serves
// the Worker and Peer services, and trains its share of the model with the same numbers as the
// built-in workers, so it can take a rank in any cluster next to them.
//
//   node examples/plain-js-worker/worker.mjs --scheduler 127.0.0.1:50051 [--host 127.0.0.1]
//     [--port 0] [--advertise host:port] [--worker-id id] [--peer-timeout 30000]
//
// Reading order: main() and registration, then the Worker handlers (LoadShard, RunStep, ...),
// then runStep(), which checks the request and hands it to step.mjs: one training step as the
// naive or the overlapped schedule describes it.
import { randomUUID } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as M from './math.mjs';
import { Mailbox, PeerLinks, StepFailed, peerService } from './peer.mjs';
import { runStepOps } from './step.mjs';
import { InvalidRequest, f32FromMsg, f32Msg, i32FromMsg } from './wire.mjs';

export const PROTO_ROOT = fileURLToPath(new URL('../../proto', import.meta.url));
/** Message sizes are set (never the 4 MiB default): a shard or a step's frames can be large. */
export const GRPC_OPTIONS = { 'grpc.max_receive_message_length': 1 << 30, 'grpc.max_send_message_length': 1 << 30 };

/** The moe.v1 package. Enums as strings, 64-bit integers as numbers, defaults filled in. */
export function loadProto() {
  const definition = protoLoader.loadSync('moe/v1/moe.proto', { includeDirs: [PROTO_ROOT], longs: Number, enums: String, defaults: true, oneofs: true });
  return grpc.loadPackageDefinition(definition).moe.v1;
}

/** The schedules this worker runs, advertised at Register (RegisterRequest.schedules). */
const SCHEDULES = ['naive', 'overlapped'];

/** The wrong state for this call now (no shard, another run, busy): gRPC FAILED_PRECONDITION. */
class WrongState extends Error {}

const statusOf = (error) => ({
  code:
    error instanceof InvalidRequest ? grpc.status.INVALID_ARGUMENT
    : error instanceof WrongState ? grpc.status.FAILED_PRECONDITION
    : error instanceof StepFailed ? grpc.status.ABORTED
    : grpc.status.INTERNAL,
  details: error?.message ?? String(error),
});

/** Names of the dense parameters, in the order the checksum and the gradient vector use. */
function denseNames(model) {
  const names = ['embedding'];
  for (let l = 0; l < model.layers; l++) {
    names.push(`layers.${l}.norm`, `layers.${l}.router`, `layers.${l}.router_bias`);
    for (let s = 0; s < model.sharedExperts; s++) names.push(...['w1', 'w3', 'w2'].map((w) => `layers.${l}.shared.${s}.${w}`));
  }
  return [...names, 'final_norm', 'head'];
}

/** Shape of every dense parameter. */
function denseShapes(model) {
  const { vocabSize: V, hiddenSize: H, expertFfnSize: F, routedExperts: E } = model;
  const byKind = { embedding: [V, H], norm: [H], router: [H, E], router_bias: [E], w1: [H, F], w3: [H, F], w2: [F, H], final_norm: [H], head: [H, V] };
  return new Map(denseNames(model).map((n) => [n, byKind[n.split('.').pop()]]));
}

/** Names of the AdamW positions: the trainable dense parameters; this rank's experts' w1, w3, w2 (layer by layer, ascending id). */
function optimizerNames(trainable, experts) {
  return { dense: trainable, experts: experts.flatMap((layer, l) => [...layer.keys()].flatMap((id) => ['w1', 'w3', 'w2'].map((w) => `layers.${l}.experts.${id}.${w}`))) };
}

export class PlainWorker {
  constructor(options) {
    this.options = options;
    this.id = options.workerId ?? `plain-js-${randomUUID().slice(0, 8)}`;
    this.proto = loadProto();
    this.server = new grpc.Server(GRPC_OPTIONS);
    this.mailbox = new Mailbox();
    this.state = 'idle';
    this.shard = undefined;
    this.step = 0;
  }

  log(line) {
    console.log(line);
  }

  async start() {
    this.server.addService(this.proto.Peer.service, peerService(this.mailbox));
    this.server.addService(this.proto.Worker.service, this.handlers());
    const host = this.options.host ?? '127.0.0.1';
    const port = await new Promise((resolve, reject) =>
      this.server.bindAsync(`${host}:${this.options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    this.address = this.options.advertise ?? `${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    this.log(`worker ${this.id} listening on ${this.address}`);
    await this.register();
  }

  /** Register (retrying until the scheduler answers), then heartbeat at the interval it asks for. */
  async register() {
    this.scheduler ??= new this.proto.Scheduler(this.options.scheduler, grpc.credentials.createInsecure(), GRPC_OPTIONS);
    const giveUp = Date.now() + (this.options.registerTimeoutMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await new Promise((resolve, reject) =>
          this.scheduler.Register(
            // It runs its ops one after another, one micro-batch a step: naive and overlapped only (not fb-overlap).
            { workerId: this.id, address: this.address, backend: 'plain-js', deviceProfile: '', pid: process.pid, schedules: SCHEDULES, maxMicroBatches: 1 },
            { deadline: new Date(Date.now() + 5_000) },
            (e, r) => (e ? reject(e) : resolve(r)),
          ),
        );
        this.log(`worker ${this.id} registered with scheduler ${this.options.scheduler}`);
        clearInterval(this.heartbeat);
        const interval = reply.heartbeatIntervalMs || 1_000;
        this.heartbeat = setInterval(() => {
          this.scheduler.Heartbeat({ workerId: this.id, runId: this.shard?.runId ?? '', step: this.step }, { deadline: new Date(Date.now() + Math.max(1_000, interval)) }, (e, r) => {
            if (!e && !r.known) {
              clearInterval(this.heartbeat);
              this.register().catch((err) => this.log(err.message));
            }
          });
        }, interval);
        this.heartbeat.unref();
        return;
      } catch (error) {
        if (Date.now() > giveUp) throw new Error(`worker ${this.id}: could not register with scheduler ${this.options.scheduler}: ${error.message}`);
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  handlers() {
    const unary = (fn) => (call, callback) =>
      Promise.resolve()
        .then(() => fn(call.request, call))
        .then((reply) => callback(null, reply), (error) => callback(statusOf(error)));
    return {
      LoadShard: unary((request) => this.loadShard(request)),
      RunStep: unary((request, call) => this.runStep(request, call.getDeadline())),
      FetchParams: unary((request) => this.fetchParams(request)),
      Health: unary(() => ({ workerId: this.id, state: this.state, runId: this.shard?.runId ?? '', rank: this.shard?.rank ?? 0 })),
      Shutdown: unary((request) => {
        this.log(`worker ${this.id}: shutdown requested (${request.reason || 'no reason given'})`);
        setImmediate(() => this.close().then(() => process.exit(0)));
        return {};
      }),
    };
  }

  // ---------------------------------------------------------------- LoadShard

  /** Checks the shard, keeps it, opens the mailbox for the run; returns the dense checksum. */
  loadShard(req) {
    if (this.state === 'running') throw new WrongState(`LoadShard: worker ${this.id} is running a step of run ${this.shard.runId}`);
    const bad = (message) => new InvalidRequest(`LoadShard: ${message}`);
    if (!req.runId) throw bad('run_id is empty');
    const model = req.model;
    if (!model) throw bad('model config is missing');
    for (const f of ['vocabSize', 'hiddenSize', 'expertFfnSize', 'routedExperts', 'topK', 'layers']) {
      if (!(model[f] >= 1)) throw bad(`model.${f}=${model[f]} must be a positive integer`);
    }
    if (model.topK > model.routedExperts) throw bad(`top_k=${model.topK} exceeds routed experts=${model.routedExperts} (model.topK)`);
    if (!['SOFTMAX', 'SIGMOID'].includes(model.scoreFunction)) throw bad(`model.score_function ${model.scoreFunction} is not SOFTMAX or SIGMOID`);
    if (!['BALANCING_NONE', 'AUX_LOSS', 'BIAS'].includes(model.balancing)) throw bad(`model.balancing ${model.balancing} is not BALANCING_NONE, AUX_LOSS or BIAS`);
    if (!(model.rmsEps > 0)) throw bad(`model.rms_eps=${model.rmsEps} must be positive`);
    // This worker's router is a plain top-k: node-limited routing would silently differ, so it is refused.
    if ((model.routerGroups || 1) > 1 && (model.routerGroupTopK || 1) < model.routerGroups) {
      throw bad(`model.router_groups=${model.routerGroups} with router_group_top_k=${model.routerGroupTopK}: node-limited routing is not implemented by this worker`);
    }
    // One copy of each expert only: redundant experts (EPLB) need their copies' gradients summed
    // across ranks, which this worker does not do, so a replicated placement is refused by name.
    if ((req.physicalToLogical ?? []).length > 0) {
      throw bad(`physical_to_logical holds ${req.physicalToLogical.length} physical experts for ${model.routedExperts} experts: redundant experts (replicated placements) are not implemented by this worker`);
    }
    if (!req.optimizer) throw bad('optimizer config is missing');
    if (req.worldSize < 1 || req.rank >= req.worldSize) throw bad(`rank ${req.rank} is outside world_size ${req.worldSize}`);
    if (req.peerAddresses.length !== req.worldSize) throw bad(`${req.peerAddresses.length} peer addresses for world_size ${req.worldSize}`);
    if (req.expertOwner.length !== model.routedExperts) throw bad(`expert_owner has ${req.expertOwner.length} entries for ${model.routedExperts} routed experts`);
    const badOwner = req.expertOwner.findIndex((r) => r >= req.worldSize);
    if (badOwner >= 0) throw bad(`expert_owner[${badOwner}]=${req.expertOwner[badOwner]} is not a rank below ${req.worldSize}`);
    if (!(req.seqLen >= 1)) throw bad(`seq_len=${req.seqLen} must be positive`);

    const shapes = denseShapes(model);
    const dense = new Map();
    req.denseParams.forEach((p, i) => {
      if (!shapes.has(p.name)) throw bad(`dense_params[${i}] ${p.name} is not a parameter of this model`);
      if (dense.has(p.name)) throw bad(`dense_params[${i}] ${p.name} arrived twice`);
      const t = f32FromMsg(p.tensor, `LoadShard.dense_params[${i}] ${p.name}`);
      if (t.shape.join() !== shapes.get(p.name).join()) throw bad(`${p.name} has shape [${t.shape}], expected [${shapes.get(p.name)}]`);
      dense.set(p.name, t);
    });
    const missing = [...shapes.keys()].filter((n) => !dense.has(n));
    if (missing.length > 0) throw bad(`dense parameters missing: ${missing.join(', ')}`);

    const H = model.hiddenSize, F = model.expertFfnSize;
    const expertShapes = { w1: [H, F], w3: [H, F], w2: [F, H] };
    const experts = Array.from({ length: model.layers }, () => new Map());
    req.experts.forEach((e, i) => {
      if (e.layer >= model.layers) throw bad(`experts[${i}] has layer ${e.layer} of ${model.layers}`);
      if (req.expertOwner[e.expert] !== req.rank) throw bad(`experts[${i}] is expert ${e.expert}, owned by rank ${req.expertOwner[e.expert]}, not by this rank ${req.rank}`);
      if (experts[e.layer].has(e.expert)) throw bad(`expert ${e.expert} of layer ${e.layer} arrived twice`);
      const w = {};
      for (const p of e.params) w[p.name] = f32FromMsg(p.tensor, `LoadShard.experts[${i}] ${p.name}`);
      for (const [name, shape] of Object.entries(expertShapes)) {
        if (!w[name]) throw bad(`experts[${i}] (layer ${e.layer}, expert ${e.expert}) has no ${name}`);
        if (w[name].shape.join() !== shape.join()) throw bad(`experts[${i}] ${name} has shape [${w[name].shape}], expected [${shape}]`);
      }
      experts[e.layer].set(e.expert, w);
    });
    const owned = req.expertOwner.filter((r) => r === req.rank).length;
    experts.forEach((layer, l) => {
      if (layer.size !== owned) throw bad(`layer ${l} carries ${layer.size} experts but this rank owns ${owned}`);
    });
    // ascending expert id in every layer: the order of the optimizer state and of the work
    const sorted = experts.map((layer) => new Map([...layer].sort(([a], [b]) => a - b)));

    const names = denseNames(model);
    const trainable = names.filter((n) => !n.endsWith('router_bias'));
    // resuming from a checkpoint: the AdamW state of every trained parameter this rank holds, by name
    const shapeOf = new Map([...dense].map(([n, t]) => [n, t.shape]));
    sorted.forEach((layer, l) => layer.forEach((w, id) => ['w1', 'w3', 'w2'].forEach((k) => shapeOf.set(`layers.${l}.experts.${id}.${k}`, w[k].shape))));
    const state = req.optimizerState;
    let restored;
    if (state && (state.step > 0 || state.m.length > 0 || state.v.length > 0)) {
      if (state.step === 0) throw bad(`optimizer_state: step is 0 but it carries ${state.m.length} first moments`);
      const byName = (list, what) =>
        new Map(list.map((t, i) => {
          const shape = shapeOf.get(t.name);
          if (!shape || t.name.endsWith('router_bias')) throw bad(`optimizer_state.${what}: ${t.name} is not a trained parameter of this shard`);
          const value = f32FromMsg(t.tensor, `LoadShard.optimizer_state.${what}[${i}] ${t.name}`);
          if (value.data.length !== shape.reduce((a, b) => a * b, 1)) throw bad(`optimizer_state.${what}: ${t.name} has ${value.data.length} values, the parameter ${shape}`);
          return [t.name, value.data];
        }));
      const m = byName(state.m, 'm'), v = byName(state.v, 'v');
      const pick = (names, from, what) =>
        names.map((name) => {
          if (!from.has(name)) throw bad(`optimizer_state.${what} of ${name} is missing`);
          return from.get(name);
        });
      const order = optimizerNames(trainable, sorted);
      restored = { t: state.step, dense: [pick(order.dense, m, 'm'), pick(order.dense, v, 'v')], experts: [pick(order.experts, m, 'm'), pick(order.experts, v, 'v')] };
    }

    this.links?.close();
    this.mailbox.open(req.runId, req.rank, req.worldSize);
    this.links = new PeerLinks({ PeerClient: this.proto.Peer, runId: req.runId, rank: req.rank, peers: req.peerAddresses, grpcOptions: GRPC_OPTIONS });
    const adamDense = new M.AdamW(req.optimizer);
    const adamExperts = new M.AdamW(req.optimizer);
    if (restored) {
      adamDense.restore(restored.t, ...restored.dense);
      adamExperts.restore(restored.t, ...restored.experts);
    }
    this.shard = {
      runId: req.runId,
      rank: req.rank,
      worldSize: req.worldSize,
      owner: [...req.expertOwner],
      model,
      seqLen: req.seqLen,
      dense,
      names,
      trainable,
      experts: sorted,
      adamDense,
      adamExperts,
    };
    this.state = 'loaded';
    this.log(`worker ${this.id}: run ${req.runId}, rank ${req.rank} of ${req.worldSize}`);
    return { paramChecksum: this.checksum() };
  }

  checksum() {
    return M.checksum(this.shard.names.map((n) => this.shard.dense.get(n).data));
  }

  fetchParams(req) {
    const s = this.shard;
    if (!s) throw new WrongState(`FetchParams: worker ${this.id} has no shard loaded`);
    if (req.runId && req.runId !== s.runId) throw new WrongState(`FetchParams: run ${req.runId} is not the loaded run ${s.runId}`);
    let optimizerState = null;
    if (req.includeOptimizerState) {
      // AdamW state by parameter name, each with its parameter's shape (step 0, empty: not stepped yet)
      const names = optimizerNames(s.trainable, s.experts);
      const shape = (name) => {
        const e = /^layers\.(\d+)\.experts\.(\d+)\.(w[123])$/.exec(name);
        return e ? s.experts[Number(e[1])].get(Number(e[2]))[e[3]].shape : s.dense.get(name).shape;
      };
      const named = (list, adam, what) => (adam[what] ?? []).map((data, i) => ({ name: list[i], tensor: f32Msg({ shape: shape(list[i]), data }) }));
      optimizerState = {
        step: s.adamDense.t,
        m: [...named(names.dense, s.adamDense, 'm'), ...named(names.experts, s.adamExperts, 'm')],
        v: [...named(names.dense, s.adamDense, 'v'), ...named(names.experts, s.adamExperts, 'v')],
      };
    }
    return {
      optimizerState,
      denseParams: s.names.map((name) => ({ name, tensor: f32Msg(s.dense.get(name)) })),
      experts: s.experts.flatMap((layer, l) =>
        [...layer].map(([expert, w]) => ({ layer: l, expert, params: ['w1', 'w3', 'w2'].map((name) => ({ name, tensor: f32Msg(w[name]) })) })),
      ),
    };
  }

  // ---------------------------------------------------------------- RunStep

  async runStep(req, deadline) {
    const s = this.shard;
    if (!s) throw new WrongState(`RunStep: worker ${this.id} has no shard loaded; call LoadShard first`);
    if (req.runId !== s.runId) throw new WrongState(`RunStep: run ${req.runId} is not the loaded run ${s.runId}`);
    if (this.state === 'running') throw new WrongState(`RunStep: step ${this.step} is still running`);
    const inputs = i32FromMsg(req.inputs, 'RunStep.inputs');
    const targets = i32FromMsg(req.targets, 'RunStep.targets');
    if (inputs.length !== targets.length) throw new InvalidRequest(`RunStep: ${inputs.length} inputs but ${targets.length} targets`);
    if (inputs.length % s.seqLen !== 0) throw new InvalidRequest(`RunStep: ${inputs.length} tokens is not a whole number of sequences of ${s.seqLen}`);
    for (const [what, list] of [['inputs', inputs], ['targets', targets]]) {
      const i = list.findIndex((t) => t < 0 || t >= s.model.vocabSize);
      if (i >= 0) throw new InvalidRequest(`RunStep.${what}[${i}]=${list[i]} is outside the vocabulary 0..${s.model.vocabSize - 1}`);
    }
    if (req.globalTokens < inputs.length || req.globalSequences < inputs.length / s.seqLen) {
      throw new InvalidRequest(`RunStep: global_tokens=${req.globalTokens}, global_sequences=${req.globalSequences} are smaller than this worker's slice`);
    }
    const o = req.options ?? {};
    if (o.scheduleName && !SCHEDULES.includes(o.scheduleName)) throw new InvalidRequest(`RunStep: schedule ${o.scheduleName} is not one this worker runs (${SCHEDULES.join(', ')})`);
    if ((o.microBatches ?? 0) > 1) throw new InvalidRequest(`RunStep: micro_batches=${o.microBatches}, but this worker runs 1 micro-batch a step`);
    if (o.allToAll && o.allToAll !== 'flat') throw new InvalidRequest(`RunStep: all_to_all "${o.allToAll}" is not implemented by this worker (flat only)`);
    const codecOf = (dtype, allowed, what) => {
      const codec = !dtype || dtype === 'DTYPE_UNSPECIFIED' ? 'F32' : dtype;
      if (!allowed.includes(codec)) throw new InvalidRequest(`RunStep: ${what} codec ${dtype} is not one of ${allowed.join(', ')}`);
      return codec;
    };
    const settings = {
      chunks: o.schedule === 'OVERLAPPED' ? Math.max(1, o.chunks) : 1,
      dispatchCodec: codecOf(o.dispatchCodec, ['F32', 'BF16', 'FP8_E4M3'], 'dispatch'),
      combineCodec: codecOf(o.combineCodec, ['F32', 'BF16'], 'combine'),
      // every wait for a peer ends by the peer timeout, and before the call's own deadline
      timeoutMs: Math.max(100, Math.round(Math.min(this.options.peerTimeoutMs ?? 30_000, (new Date(deadline).getTime() - Date.now()) * 0.9 || Infinity))),
      recordTimeline: o.recordTimeline,
    };
    this.state = 'running';
    this.step = req.step;
    this.mailbox.prune(req.step);
    try {
      return await runStepOps(this, { step: req.step, inputs, targets, globalTokens: req.globalTokens, globalSequences: req.globalSequences }, settings);
    } finally {
      this.state = 'loaded';
    }
  }

  async close() {
    clearInterval(this.heartbeat);
    this.links?.close();
    this.mailbox.close('worker closing');
    this.scheduler?.close();
    // tryShutdown waits for every client to hang up; one that keeps its channel open would keep
    // this process alive after Shutdown, so force it after a grace period
    await new Promise((resolve) => {
      const force = setTimeout(() => (this.server.forceShutdown(), resolve()), 2000);
      this.server.tryShutdown(() => (clearTimeout(force), resolve()));
    });
  }
}

/** Command-line flags (unknown ones, such as the scheduler's --backend, are ignored). */
export function parseArgs(argv) {
  const value = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const number = (name) => (value(name) === undefined ? undefined : Number(value(name)));
  const scheduler = value('--scheduler') ?? process.env.MOE_SCHEDULER;
  if (!scheduler) throw new Error('usage: worker.mjs --scheduler <host:port> [--host h] [--port p] [--advertise host:port] [--worker-id id] [--peer-timeout ms]');
  return {
    scheduler,
    host: value('--host'),
    port: number('--port'),
    advertise: value('--advertise'),
    workerId: value('--worker-id'),
    peerTimeoutMs: number('--peer-timeout'),
    registerTimeoutMs: number('--register-timeout'),
  };
}

export async function main(argv = process.argv.slice(2)) {
  const worker = new PlainWorker(parseArgs(argv));
  const stop = (signal) => {
    worker.log(`worker ${worker.id}: ${signal}, stopping`);
    worker.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(1), 5_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  await worker.start();
  return worker;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(error.message);
    process.exit(1);
  });
}
