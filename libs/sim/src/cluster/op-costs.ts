/**
 * The modeled time of every op of an expanded pipeline step on one GPU: compute from the cost
 * model (FLOPs and HBM bytes on the device profile), all-to-alls and stage-to-stage sends from
 * the bytes they put on the GPU's NVLink and NIC, ZeRO-1's gradient reduce-scatter and parameter
 * all-gather from the bytes of the parameters the GPU holds.
 *
 * Backward ops cost twice their forward (input and weight gradients, the cost model's
 * convention); an op whose unit deferred its weight gradients costs its forward once (input
 * gradients), and `weights_bwd` the other half. Attention's score computation has no weights;
 * its share is split the same way (an approximation named here).
 */
import type { PipelineOp } from '@moe/schedule';
import { CostModel, type OpCost } from '../cost-model';
import { PORTS, SimulationError, type PortUse } from './engine';
import { allToAllTraffic } from './traffic';
import type { ClusterSimConfig, ResolvedLayout } from './config';

export interface OpTime {
  /** compute: ms at full speed; comm: latency ms. */
  ms: number;
  wire?: PortUse[];
  /** FLOPs of the op (all dtypes), for the model FLOPs of a step. */
  flops: number;
}

export interface StepParams {
  /** Parameters of one MoE layer that every GPU of a stage holds (attention, router, shared experts, norms). */
  denseLayer: number;
  /** Parameters of one dense (no-expert) layer. */
  denseOnlyLayer: number;
  /** Parameters of one layer's experts on one GPU (routedExperts / ep of them). */
  localExperts: number;
  /** Embedding or head: V x H. */
  vocabulary: number;
}

const sumFlops = (c: OpCost) => Object.values(c.flops).reduce((a, b) => a + (b ?? 0), 0);
const scaled = (c: OpCost, f: number): OpCost => ({
  flops: Object.fromEntries(Object.entries(c.flops).map(([d, v]) => [d, (v ?? 0) * f])),
  bytes: c.bytes * f,
});

export class OpCosts {
  readonly costs: CostModel;
  private readonly T: number;
  private readonly slots: number;
  private readonly memo = new Map<string, OpTime>();

  constructor(
    private readonly config: ClusterSimConfig,
    private readonly layout: ResolvedLayout,
  ) {
    const m = config.model;
    this.costs = new CostModel(m, config.profile, { worldSize: layout.expertParallel, layers: m.layers });
    this.T = config.tokensPerMicroBatch;
    this.slots = this.T * m.topK;
  }

  /** Parameter counts the step's memory and ZeRO-1 traffic follow from. */
  params(): StepParams {
    const m = this.config.model;
    const c = this.costs;
    const norms = 2 * m.hiddenSize;
    return {
      denseLayer: c.attentionParams() + m.hiddenSize * m.routedExperts + m.sharedExperts * c.expertParams() + norms,
      denseOnlyLayer: c.attentionParams() + 3 * m.hiddenSize * m.denseFfnSize + norms,
      localExperts: (m.routedExperts / this.layout.expertParallel) * c.expertParams(),
      vocabulary: m.vocabSize * m.hiddenSize,
    };
  }

  private compute(cost: OpCost): OpTime {
    return { ms: this.costs.ms(cost), flops: sumFlops(cost) };
  }

  /** The dense FFN of a no-expert layer: the shared expert's cost scaled to its width. */
  private denseFfn(): OpCost {
    const m = this.config.model;
    return scaled(this.costs.shared(this.T), m.denseFfnSize / (Math.max(1, m.sharedExperts) * m.expertFfnSize));
  }

  private forwardCost(kind: string, dense: boolean): OpCost {
    const c = this.costs;
    switch (kind) {
      case 'route':
        return c.route(this.T);
      case 'shared':
        return dense ? this.denseFfn() : c.shared(this.T);
      case 'experts':
        return c.experts(this.slots);
      case 'post':
        return c.post(this.T, this.slots);
      default:
        throw new SimulationError(`no forward cost for op kind ${kind}`);
    }
  }

  /** Time of `op` on one GPU of its stage; `dense`: the op's layer has no experts. */
  time(op: PipelineOp, dense: boolean): OpTime {
    const key = `${op.kind}|${dense ? 1 : 0}|${op.weightsDeferred ? 1 : 0}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    const t = this.compute0(op, dense);
    this.memo.set(key, t);
    return t;
  }

  private compute0(op: PipelineOp, dense: boolean): OpTime {
    const c = this.costs;
    const w = this.config.wire;
    switch (op.kind) {
      case 'begin':
        return this.compute(c.begin(this.T));
      case 'route':
      case 'shared':
      case 'experts':
      case 'post':
        return this.compute(this.forwardCost(op.kind, dense));
      case 'loss':
        return this.compute(c.loss(this.T));
      case 'post_bwd':
        return this.compute(scaled(this.forwardCost('post', dense), 2));
      case 'route_bwd':
      case 'shared_bwd':
      case 'experts_bwd':
        return this.compute(scaled(this.forwardCost(op.kind.replace('_bwd', ''), dense), op.weightsDeferred ? 1 : 2));
      case 'weights_bwd': {
        const parts = dense ? ['route', 'shared'] : ['route', 'shared', 'experts'];
        return parts.map((p) => this.compute(this.forwardCost(p, dense))).reduce((a, b) => ({ ms: a.ms + b.ms, flops: a.flops + b.flops }));
      }
      case 'grads':
        return this.compute(c.grads(this.T));
      case 'dispatch':
        return this.allToAll(w.dispatch);
      case 'combine':
        return this.allToAll(w.combine);
      case 'combine_bwd':
      case 'dispatch_bwd':
        return this.allToAll(w.backward);
      case 'send_fwd':
      case 'send_bwd':
        return this.transfer(this.T * this.config.model.hiddenSize * w.pipeline, this.layout.gpusPerStage >= this.layout.nodeSize);
      default:
        throw new SimulationError(`op kind ${op.kind} has no modeled time in a pipeline step`);
    }
  }

  private allToAll(bytesPerValue: number): OpTime {
    const p = this.costs.profile;
    const m = this.config.model;
    const t = allToAllTraffic(
      {
        tokens: this.T,
        topK: m.topK,
        hiddenSize: m.hiddenSize,
        epSize: this.layout.expertParallel,
        nodeSize: this.layout.nodeSize,
        routedExperts: m.routedExperts,
        maxNodes: m.maxNodesPerToken,
      },
      bytesPerValue,
    );
    const wire: PortUse[] = [{ port: PORTS.nvlink, ms: t.nvlinkBytes / (p.intra.bandwidthGBps * 1e6) }];
    if (t.nicBytes > 0) wire.push({ port: PORTS.nic, ms: t.nicBytes / (p.inter.bandwidthGBps * 1e6) });
    const latencyUs = t.nicBytes > 0 ? p.inter.latencyUs : p.intra.latencyUs;
    return { ms: latencyUs / 1e3, wire, flops: 0 };
  }

  /** A point-to-point transfer of `bytes` on the NIC (`interNode`) or NVLink. */
  transfer(bytes: number, interNode: boolean): OpTime {
    const spec = interNode ? this.costs.profile.inter : this.costs.profile.intra;
    return { ms: spec.latencyUs / 1e3, wire: [{ port: interNode ? PORTS.nic : PORTS.nvlink, ms: bytes / (spec.bandwidthGBps * 1e6) }], flops: 0 };
  }

  /** AdamW on this GPU's ZeRO-1 shard: 28 bytes a parameter (cost-model.ts), HBM-bound. */
  update(shardParams: number): OpTime {
    return this.compute({ flops: {}, bytes: 28 * shardParams });
  }
}
