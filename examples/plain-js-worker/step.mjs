// One training step of the plain-JS worker, op by op, as the naive or the overlapped schedule
// describes it: the forward and backward passes around the all-to-alls, the all-reduce of the
// dense gradients, the update. The worker (worker.mjs) checks the request and calls runStepOps.
import * as M from './math.mjs';
import { StepFailed, allReduceSum, combine, dispatch, dispatchLayout } from './peer.mjs';

/**
 * One training step, op by op. Per layer: route; per chunk: dispatch, experts, combine; shared
 * experts; the residual. Then loss and head backward, and per layer in reverse: combine
 * backward, per chunk the backward all-to-alls around the experts' backward; router and norm
 * backward. Then the all-reduce of dense gradients + expert counts, and the update. Ops run
 * one after another (no overlap): the frames and their keys are what the schedule asks for.
 */
export async function runStepOps(w, batch, settings) {
  const s = w.shard;
  const { model, dense, owner } = s;
  const net = { rank: s.rank, worldSize: s.worldSize, mailbox: w.mailbox, links: w.links };
  const H = model.hiddenSize, k = model.topK, E = model.routedExperts, T = batch.inputs.length;
  const C = settings.chunks;
  const bytesBefore = w.links.bytesSent;
  const t0 = performance.now();
  const timeline = [];
  const op = async (name, stream, direction, layer, chunk, fn) => {
    const start = performance.now() - t0;
    const before = w.links.bytesSent;
    try {
      return await fn();
    } catch (error) {
      const where = `${name}${layer >= 0 ? ` layer ${layer}` : ''}${chunk >= 0 ? ` chunk ${chunk}` : ''}`;
      throw new StepFailed(`rank ${s.rank}, step ${batch.step}, op ${where}: ${error.message}`);
    } finally {
      if (settings.recordTimeline) {
        timeline.push({ name, stream, layer, chunk, startMs: start, endMs: performance.now() - t0, bytesSent: w.links.bytesSent - before, direction });
      }
    }
  };
  const key = (layer, chunk, phase) => ({ step: batch.step, layer, chunk, phase });
  const chunkSlots = (c) => [Math.floor((c * T) / C) * k, Math.floor(((c + 1) * T) / C) * k];
  const p = (name) => dense.get(name);
  const shared = (l) => Array.from({ length: model.sharedExperts }, (_, i) => ({ w1: p(`layers.${l}.shared.${i}.w1`), w3: p(`layers.${l}.shared.${i}.w3`), w2: p(`layers.${l}.shared.${i}.w2`) }));
  const grads = new Map(s.trainable.map((n) => [n, new Float32Array(p(n).data.length)]));
  const expertGrads = s.experts.map((layer) => new Map([...layer].map(([id, w]) => [id, { w1: new Float32Array(w.w1.data.length), w3: new Float32Array(w.w3.data.length), w2: new Float32Array(w.w2.data.length) }])));
  const counts = new Int32Array(model.layers * E);
  const tapes = [];

  // ---- forward
  let x = await op('begin', 'compute', 'forward', -1, -1, () => M.embed(batch.inputs, p('embedding')));
  for (let l = 0; l < model.layers; l++) {
    const tape = { x, work: [] };
    tapes.push(tape);
    await op('route', 'compute', 'forward', l, -1, () => {
      tape.norm = M.rmsNorm(x, p(`layers.${l}.norm`), model.rmsEps);
      tape.route = M.route(tape.norm.y, p(`layers.${l}.router`), p(`layers.${l}.router_bias`), model, s.seqLen, batch.globalSequences);
      counts.set(tape.route.counts, l * E);
      tape.layouts = Array.from({ length: C }, (_, c) => dispatchLayout(tape.route.expertIds, owner, s.worldSize, ...chunkSlots(c)));
    });
    const slotOutputs = new Float32Array(T * k * H);
    tape.handles = [];
    for (let c = 0; c < C; c++) {
      const { received, handle } = await op('dispatch', 'comm', 'forward', l, c, () =>
        dispatch(net, key(l, c, 'DISPATCH'), tape.layouts[c], tape.norm.y.data, H, {
          rowOfSlot: (slot) => Math.floor(slot / k),
          expertIds: tape.route.expertIds,
          codec: settings.dispatchCodec,
          timeoutMs: settings.timeoutMs,
        }),
      );
      tape.handles[c] = handle;
      const outputs = await op('experts', 'compute', 'forward', l, c, () => expertsForward(s, l, received, tape.work, c));
      await op('combine', 'comm', 'forward', l, c, () =>
        combine(net, key(l, c, 'COMBINE'), handle, outputs, { codec: settings.combineCodec, timeoutMs: settings.timeoutMs, into: slotOutputs }),
      );
    }
    await op('shared', 'compute', 'forward', l, -1, () => (tape.shared = M.sharedForward(shared(l), tape.norm.y)));
    x = await op('post', 'compute', 'forward', l, -1, () => {
      tape.slotOutputs = { shape: [T * k, H], data: slotOutputs };
      return M.residualAdd(tape.x, tape.shared.y, M.combineSlots(tape.slotOutputs, tape.route.weights, k));
    });
  }

  // ---- loss, head and final norm backward
  let lossSum = 0;
  let dx = await op('loss', 'compute', 'backward', -1, -1, () => {
    const final = M.rmsNorm(x, p('final_norm'), model.rmsEps);
    const logits = M.matmul(final.y, p('head'));
    const ce = M.crossEntropy(logits, batch.targets, batch.globalTokens);
    lossSum = ce.lossSum;
    M.addInto(grads.get('head'), M.matmulTransA(final.y, ce.dLogits).data);
    const back = M.rmsNormBackward(final.cache, M.matmulTransB(ce.dLogits, p('head')));
    M.addInto(grads.get('final_norm'), back.dGain.data);
    return back.dx;
  });

  // ---- backward, last layer first
  for (let l = model.layers - 1; l >= 0; l--) {
    const tape = tapes[l];
    const dy = dx;
    const comb = await op('post_bwd', 'compute', 'backward', l, -1, () => M.combineSlotsBackward(dy, tape.slotOutputs, tape.route.weights, k));
    const dSlotInputs = new Float32Array(T * k * H);
    for (let c = 0; c < C; c++) {
      const { received, handle } = await op('combine_bwd', 'comm', 'backward', l, c, () =>
        dispatch(net, key(l, c, 'COMBINE_BACKWARD'), tape.layouts[c], comb.dSlotOutputs.data, H, {
          rowOfSlot: (slot) => slot,
          expertIds: tape.route.expertIds,
          codec: settings.combineCodec,
          timeoutMs: settings.timeoutMs,
        }),
      );
      const inputGrads = await op('experts_bwd', 'compute', 'backward', l, c, () => expertsBackward(s, l, received, tape.work[c], expertGrads[l]));
      await op('dispatch_bwd', 'comm', 'backward', l, c, () =>
        combine(net, key(l, c, 'DISPATCH_BACKWARD'), handle, inputGrads, { codec: settings.combineCodec, timeoutMs: settings.timeoutMs, into: dSlotInputs }),
      );
    }
    const dhShared = await op('shared_bwd', 'compute', 'backward', l, -1, () => {
      const back = M.sharedBackward(shared(l), tape.shared.caches, dy);
      back.grads.forEach((g, i) => ['w1', 'w3', 'w2'].forEach((w) => M.addInto(grads.get(`layers.${l}.shared.${i}.${w}`), g[w].data)));
      return back.dh;
    });
    dx = await op('route_bwd', 'compute', 'backward', l, -1, () => {
      const router = M.routeBackward(tape.route.cache, comb.dWeights);
      M.addInto(grads.get(`layers.${l}.router`), router.dRouter.data);
      const dh = M.moeInputGrad(dhShared, router.dh, { shape: [T * k, H], data: dSlotInputs }, k);
      const norm = M.rmsNormBackward(tape.norm.cache, dh);
      M.addInto(grads.get(`layers.${l}.norm`), norm.dGain.data);
      const next = M.zeros(dy.shape);
      for (let i = 0; i < next.data.length; i++) next.data[i] = dy.data[i] + norm.dx.data[i];
      return next;
    });
  }

  // ---- gradients of the replicated params + expert counts, summed over ranks; the update
  const flat = await op('grads', 'compute', 'update', -1, -1, () => {
    M.addInto(grads.get('embedding'), M.embedBackward(batch.inputs, dx, model.vocabSize).data);
    const total = s.trainable.reduce((n, name) => n + grads.get(name).length, 0) + counts.length;
    const out = new Float32Array(total);
    let offset = 0;
    for (const name of s.trainable) {
      out.set(grads.get(name), offset);
      offset += grads.get(name).length;
    }
    out.set(counts, offset);
    return out;
  });
  const reduced = await op('allreduce', 'comm', 'update', -1, -1, () => allReduceSum(net, key(-1, 0, 'ALLREDUCE'), flat, settings.timeoutMs));
  await op('update', 'compute', 'update', -1, -1, () => {
    let offset = 0;
    const slices = s.trainable.map((name) => reduced.subarray(offset, (offset += p(name).data.length)));
    s.adamDense.step(s.trainable.map((name) => p(name).data), slices);
    const params = [], pg = [];
    s.experts.forEach((layer, l) => {
      for (const [id, w] of layer) {
        const g = expertGrads[l].get(id);
        params.push(w.w1.data, w.w3.data, w.w2.data);
        pg.push(g.w1, g.w3, g.w2);
      }
    });
    s.adamExperts.step(params, pg);
    if (model.balancing === 'BIAS') {
      for (let l = 0; l < model.layers; l++) M.updateRouterBias(p(`layers.${l}.router_bias`).data, reduced.subarray(offset + l * E, offset + (l + 1) * E), model.biasUpdateSpeed);
    }
  });

  let auxLoss = 0;
  for (const tape of tapes) auxLoss += tape.route.auxLoss;
  return {
    step: batch.step,
    lossSum,
    auxLoss,
    expertCounts: [...counts],
    paramChecksum: w.checksum(),
    timeline,
    bytesSent: w.links.bytesSent - bytesBefore,
    stepMs: performance.now() - t0,
  };
}

/**
 * This rank's experts on the rows that arrived (by source rank): grouped by expert, ascending
 * id, sources in rank order; returns the output rows by source, in the order they came.
 */
export function expertsForward(shard, layer, received, work, chunk) {
  const H = shard.model.hiddenSize;
  const local = shard.experts[layer];
  const groups = new Map();
  received.forEach((from, i) =>
    from.expertIds.forEach((expert, r) => {
      if (!local.has(expert)) throw new Error(`received a row for expert ${expert} of layer ${layer} from rank ${from.source}, which this rank does not hold`);
      if (!groups.has(expert)) groups.set(expert, []);
      groups.get(expert).push([i, r]);
    }),
  );
  const outputs = received.map((r) => new Float32Array(r.rows.length));
  work[chunk] = [...groups].sort(([a], [b]) => a - b).map(([expert, rows]) => {
    const input = M.zeros([rows.length, H]);
    rows.forEach(([i, r], n) => input.data.set(received[i].rows.subarray(r * H, (r + 1) * H), n * H));
    const out = M.expertForward(local.get(expert), input);
    rows.forEach(([i, r], n) => outputs[i].set(out.y.data.subarray(n * H, (n + 1) * H), r * H));
    return { expert, rows, cache: out.cache };
  });
  return outputs;
}

/** Backward of `experts` for one chunk: gradient rows arrive in the forward's order; expert grads accumulate. */
export function expertsBackward(shard, layer, received, work, grads) {
  const H = shard.model.hiddenSize;
  const outputs = received.map((r) => new Float32Array(r.rows.length));
  for (const { expert, rows, cache } of work ?? []) {
    const dy = M.zeros([rows.length, H]);
    rows.forEach(([i, r], n) => {
      if (received[i].expertIds[r] !== expert) throw new Error(`backward row ${r} from rank ${received[i].source} is for expert ${received[i].expertIds[r]}, forward had expert ${expert}`);
      dy.data.set(received[i].rows.subarray(r * H, (r + 1) * H), n * H);
    });
    const back = M.expertBackward(shard.experts[layer].get(expert), cache, dy);
    const g = grads.get(expert);
    M.addInto(g.w1, back.grads.w1.data);
    M.addInto(g.w3, back.grads.w3.data);
    M.addInto(g.w2, back.grads.w2.data);
    rows.forEach(([i, r], n) => outputs[i].set(back.dx.data.subarray(n * H, (n + 1) * H), r * H));
  }
  return outputs;
}
