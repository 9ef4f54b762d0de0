/**
 * A pipeline plan's units as op lists, one per pipeline rank, with the expert-parallel
 * all-to-alls inside every chunk and the sends between stages: what each GPU of that pipeline
 * rank runs in one step (every GPU of a stage runs the same list; their all-to-alls go to each other).
 *
 * Per MoE layer of a chunk:
 * - F: route (attention + router) | dispatch ~ shared | experts | combine | post
 * - B (full): post_bwd | combine_bwd ~ shared_bwd | experts_bwd | dispatch_bwd | route_bwd,
 *   each backward computing input and weight gradients; with `deferWeights` input gradients only.
 * - W: one `weights_bwd` per layer: the deferred weight gradients of the layer's attention,
 *   shared and local experts.
 * - FB (DeepSeek-V3 §3.2.1, Figure 4): the forward's layers walk up while the backward's walk
 *   down, one pair of layers at a time; each all-to-all of one runs under a compute op of the other:
 *       compute: post_bwd(b) route(f) shared(f) experts_bwd(b) shared_bwd(b) experts(f) route_bwd(b) post(f)
 *       comm:    combine_bwd(b) dispatch(f) dispatch_bwd(b) combine(f)
 * (`~`: runs while the all-to-all before it is in flight.) Dense layers (DeepSeek-V3's first 3)
 * have no all-to-alls: their FFN is one `shared` op (and `shared_bwd`). The first stage embeds (`begin`) before its
 * forward and gathers embedding gradients (`grads`) after its backward; the last stage runs the
 * head and loss (`loss`, forward and backward) at the end of its forward.
 * A chunk that needs another rank's output waits for a `send_fwd`/`send_bwd` op on that rank (`from`).
 */
import { isCommKind, type Direction, type OpKind, type Stream } from '../ops';
import { PipelineScheduleError, rankOf, type ChunkRef, type PipelinePlan } from './plan';

export type PipelineOpKind = OpKind | 'weights_bwd' | 'send_fwd' | 'send_bwd';

export interface PipelineOp {
  /** Index in the rank's list. */
  id: number;
  kind: PipelineOpKind;
  stream: Stream;
  direction: Direction;
  /** Model layer (global index); -1 when not tied to one. */
  layer: number;
  /** -1: pipeline ops are not chunked within a layer. */
  chunk: number;
  microBatch: number;
  /** Pipeline stage of the chunk the op belongs to. */
  stage: number;
  /** The plan unit (index in the rank's unit list) the op belongs to. */
  unit: number;
  /** Ids of ops of this rank that must finish first. */
  deps: number[];
  /** Sends on other ranks this op waits for (the activations or gradients it needs). */
  from?: { rank: number; op: number }[];
  /** A backward op of a unit that defers its weight gradients: it computes input gradients only. */
  weightsDeferred?: boolean;
}

export interface StageLayers {
  /** [stages] the model layers of each stage, in order. */
  layers: number[][];
  /** Layers without experts (dense FFN, no all-to-alls). */
  dense: ReadonlySet<number>;
}

/** `layers` model layers over `stages` stages, the earlier stages taking one more when they do not divide. */
export function splitLayers(layers: number, stages: number, denseLayers = 0): StageLayers {
  if (layers < stages) throw new PipelineScheduleError(`layers=${layers} must be >= stages=${stages} (every stage needs a layer)`);
  const out: number[][] = [];
  let next = 0;
  for (let s = 0; s < stages; s++) {
    const count = Math.floor(layers / stages) + (s < layers % stages ? 1 : 0);
    out.push(Array.from({ length: count }, () => next++));
  }
  return { layers: out, dense: new Set(Array.from({ length: Math.min(denseLayers, layers) }, (_, i) => i)) };
}

const COMM_EXTRA: ReadonlySet<PipelineOpKind> = new Set(['send_fwd', 'send_bwd']);

/** Expands `plan` into one op list per rank; see the file's docstring. */
export function expandPlan(plan: PipelinePlan, stageLayers: StageLayers): PipelineOp[][] {
  if (stageLayers.layers.length !== plan.stages) {
    throw new PipelineScheduleError(`stage layers for ${stageLayers.layers.length} stages, the plan has ${plan.stages}`);
  }
  const lists: PipelineOp[][] = plan.units.map(() => []);
  const key = (c: ChunkRef) => c.microBatch * plan.stages + c.stage;
  // The send (or, where the next stage is on the same rank, the last op) each chunk's successor waits for.
  const forwardOut = new Map<number, { rank: number; op: number }>();
  const backwardOut = new Map<number, { rank: number; op: number }>();
  const forwardEnd = new Map<number, number>();
  const pendingWeights = new Map<number, number>();
  const lastStage = plan.stages - 1;
  type Needed = { map: Map<number, { rank: number; op: number }>; chunk: ChunkRef; what: string };
  const links: ({ rank: number; op: number } & Needed)[] = [];

  plan.units.forEach((units, rank) => {
    const ops = lists[rank]!;
    let unitIndex = 0;
    const add = (kind: PipelineOpKind, direction: Direction, layer: number, c: ChunkRef, deps: number[]): number => {
      const id = ops.length;
      const stream: Stream = COMM_EXTRA.has(kind) || isCommKind(kind as OpKind) ? 'comm' : 'compute';
      ops.push({ id, kind, stream, direction, layer, chunk: -1, microBatch: c.microBatch, stage: c.stage, unit: unitIndex, deps: deps.filter((d) => d >= 0) });
      return id;
    };
    /** Op `id` waits for the output of chunk `c` (its forward or its backward); linked once every rank is expanded. */
    const waitFor = (id: number, needed: Needed | undefined) => {
      if (needed) links.push({ rank, op: id, ...needed });
    };
    const inputOf = (c: ChunkRef): Needed | undefined => (c.stage === 0 ? undefined : { map: forwardOut, chunk: { ...c, stage: c.stage - 1 }, what: 'forward' });
    const gradOf = (c: ChunkRef): Needed | undefined => (c.stage === lastStage ? undefined : { map: backwardOut, chunk: { ...c, stage: c.stage + 1 }, what: 'backward' });

    /** Start of a forward chunk: the op that receives its input. Returns the id later ops chain on. */
    const forwardStart = (c: ChunkRef): number => {
      const first = c.stage === 0 ? add('begin', 'forward', -1, c, []) : add('route', 'forward', stageLayers.layers[c.stage]![0]!, c, []);
      waitFor(first, inputOf(c));
      return first;
    };

    const forwardLayer = (c: ChunkRef, layer: number, upstream: number, skipRoute: boolean): number => {
      const route = skipRoute ? upstream : add('route', 'forward', layer, c, [upstream]);
      if (stageLayers.dense.has(layer)) return add('shared', 'forward', layer, c, [route]);
      const dispatch = add('dispatch', 'forward', layer, c, [route]);
      const shared = add('shared', 'forward', layer, c, [route]);
      const experts = add('experts', 'forward', layer, c, [dispatch]);
      const combine = add('combine', 'forward', layer, c, [experts]);
      return add('post', 'forward', layer, c, [combine, shared]);
    };

    const backwardLayer = (c: ChunkRef, layer: number, upstream: number, deferWeights: boolean): number => {
      if (stageLayers.dense.has(layer)) {
        const ffnBackward = add('shared_bwd', 'backward', layer, c, [upstream]);
        const attentionBackward = add('route_bwd', 'backward', layer, c, [ffnBackward]);
        if (deferWeights) for (const id of [ffnBackward, attentionBackward]) ops[id]!.weightsDeferred = true;
        return attentionBackward;
      }
      const postBackward = add('post_bwd', 'backward', layer, c, [upstream]);
      const combineBackward = add('combine_bwd', 'backward', layer, c, [postBackward]);
      const sharedBackward = add('shared_bwd', 'backward', layer, c, [postBackward]);
      const expertsBackward = add('experts_bwd', 'backward', layer, c, [combineBackward]);
      const dispatchBackward = add('dispatch_bwd', 'backward', layer, c, [expertsBackward]);
      const routeBackward = add('route_bwd', 'backward', layer, c, [dispatchBackward, sharedBackward]);
      if (deferWeights) for (const id of [sharedBackward, expertsBackward, routeBackward]) ops[id]!.weightsDeferred = true;
      return routeBackward;
    };

    const forwardFinish = (c: ChunkRef, last: number) => {
      let end = last;
      if (c.stage === lastStage) end = add('loss', 'forward', -1, c, [end]);
      forwardEnd.set(key(c), end);
      const nextRank = c.stage === lastStage ? -1 : rankOf(plan, { ...c, stage: c.stage + 1 });
      if (nextRank === -1) return;
      forwardOut.set(key(c), nextRank === rank ? { rank, op: end } : { rank, op: add('send_fwd', 'forward', -1, c, [end]) });
    };

    const backwardStart = (c: ChunkRef): number => {
      // The last stage's backward starts from its own loss; others wait for the next stage's gradient.
      const marker = forwardEnd.get(key(c));
      if (marker === undefined) throw new PipelineScheduleError(`${plan.schedule}: rank ${rank} runs the backward of micro-batch ${c.microBatch} at stage ${c.stage} before its forward`);
      return marker;
    };

    const backwardFinish = (c: ChunkRef, last: number, deferWeights: boolean) => {
      let end = last;
      if (c.stage === 0) end = add('grads', 'backward', -1, c, [end]);
      if (deferWeights) pendingWeights.set(key(c), end);
      if (c.stage === 0) return;
      const prevRank = rankOf(plan, { ...c, stage: c.stage - 1 });
      backwardOut.set(key(c), prevRank === rank ? { rank, op: end } : { rank, op: add('send_bwd', 'backward', -1, c, [end]) });
    };

    const runForward = (c: ChunkRef) => {
      let up = forwardStart(c);
      stageLayers.layers[c.stage]!.forEach((layer, i) => {
        up = forwardLayer(c, layer, up, i === 0 && c.stage !== 0);
      });
      forwardFinish(c, up);
    };

    const runBackward = (c: ChunkRef, deferWeights: boolean) => {
      let up = backwardStart(c);
      const first = ops.length;
      const layers = [...stageLayers.layers[c.stage]!].reverse();
      layers.forEach((layer) => {
        up = backwardLayer(c, layer, up, deferWeights);
      });
      if (ops[first]) waitFor(first, gradOf(c));
      backwardFinish(c, up, deferWeights);
    };

    for (const u of plan.units[rank]!) {
      const unitFirst = ops.length;
      if (u.kind === 'F') runForward(u.chunk);
      else if (u.kind === 'B') runBackward(u.chunk, u.deferWeights);
      else if (u.kind === 'W') {
        const after = pendingWeights.get(key(u.chunk));
        if (after === undefined) throw new PipelineScheduleError(`${plan.schedule}: rank ${rank} runs W of micro-batch ${u.chunk.microBatch} stage ${u.chunk.stage} before its B`);
        for (const layer of stageLayers.layers[u.chunk.stage]!) add('weights_bwd', 'backward', layer, u.chunk, [after]);
      } else runPair(u.forward, u.backward);
      if (u.alsoWaitsForInputOf) {
        const source = inputOf(u.alsoWaitsForInputOf);
        if (source && ops[unitFirst]) waitFor(unitFirst, source);
      }
      unitIndex++;
    }

    /** FB: forward layers up, backward layers down, one pair at a time (see the docstring). */
    function runPair(f: ChunkRef, b: ChunkRef) {
      let fUp = forwardStart(f);
      let bUp = backwardStart(b);
      const fLayers = stageLayers.layers[f.stage]!;
      const bLayers = [...stageLayers.layers[b.stage]!].reverse();
      let gradWaited = false;
      const waitGrad = (id: number) => {
        if (!gradWaited) waitFor(id, gradOf(b));
        gradWaited = true;
      };
      for (let i = 0; i < Math.max(fLayers.length, bLayers.length); i++) {
        const fl = fLayers[i];
        const bl = bLayers[i];
        const skipRoute = i === 0 && f.stage !== 0;
        const pairable = fl !== undefined && bl !== undefined && !stageLayers.dense.has(fl) && !stageLayers.dense.has(bl);
        if (!pairable) {
          if (bl !== undefined) {
            const first = ops.length;
            bUp = backwardLayer(b, bl, bUp, false);
            waitGrad(first);
          }
          if (fl !== undefined) fUp = forwardLayer(f, fl, fUp, skipRoute);
          continue;
        }
        const postBackward = add('post_bwd', 'backward', bl, b, [bUp]);
        waitGrad(postBackward);
        const route = skipRoute ? fUp : add('route', 'forward', fl, f, [fUp]);
        const combineBackward = add('combine_bwd', 'backward', bl, b, [postBackward]);
        const dispatch = add('dispatch', 'forward', fl, f, [route]);
        const shared = add('shared', 'forward', fl, f, [route]);
        const expertsBackward = add('experts_bwd', 'backward', bl, b, [combineBackward]);
        const dispatchBackward = add('dispatch_bwd', 'backward', bl, b, [expertsBackward]);
        const sharedBackward = add('shared_bwd', 'backward', bl, b, [postBackward]);
        const experts = add('experts', 'forward', fl, f, [dispatch]);
        const combine = add('combine', 'forward', fl, f, [experts]);
        bUp = add('route_bwd', 'backward', bl, b, [dispatchBackward, sharedBackward]);
        fUp = add('post', 'forward', fl, f, [combine, shared]);
      }
      forwardFinish(f, fUp);
      backwardFinish(b, bUp, false);
    }
  });

  for (const link of links) {
    const source = link.map.get(key(link.chunk));
    if (!source) {
      throw new PipelineScheduleError(
        `${plan.schedule}: rank ${link.rank} needs the ${link.what} of micro-batch ${link.chunk.microBatch} at stage ${link.chunk.stage}, which no rank runs`,
      );
    }
    const op = lists[link.rank]![link.op]!;
    if (source.rank === link.rank) op.deps.push(source.op);
    else (op.from ??= []).push(source);
  }
  return lists;
}
