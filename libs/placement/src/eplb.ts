/**
 * Redundant experts, EPLB-style (deepseek-ai/EPLB `eplb.py`; DeepSeek-V3 section 3.4): from
 * per-expert loads, decide how many replicas each logical expert gets and on which GPU each
 * replica (physical expert) lives, so the GPUs' loads are as even as possible.
 *
 * Two policies, chosen as EPLB chooses them:
 * - hierarchical (groups % nodes == 0): pack the expert groups onto nodes (so node-limited
 *   routing's groups stay on one node), replicate experts within each node, pack each node's
 *   replicas onto its GPUs;
 * - global (otherwise): the same steps with one group and one node: replicate over the whole
 *   cluster and pack the replicas onto all GPUs.
 *
 * Loads are compared in float32, as EPLB does after `weight.float()`, and every tie goes to the
 * lower index (EPLB's `min`/`max` take the first), so the same inputs give EPLB's outputs.
 * Physical expert p lives on GPU floor(p / (replicas / gpus)); GPU g on node floor(g / (gpus / nodes)).
 */
import { PlacementError } from './errors';

export interface EplbOptions {
  /** Physical experts (replicas) per layer, a multiple of `gpus` and at least the logical experts. */
  replicas: number;
  /** Expert groups (node-limited routing's groups; 1 when routing is not grouped). */
  groups: number;
  /** Server nodes: the fast intra-node links (NVLink) are inside a node. */
  nodes: number;
  /** GPUs (ranks), a multiple of `nodes`. */
  gpus: number;
}

export interface EplbPlan {
  policy: 'hierarchical' | 'global';
  /** [layers][replicas] logical expert held by each physical expert. */
  physicalToLogical: number[][];
  /** [layers][experts][maxCount] physical experts of each logical expert by replica rank, -1 padded. */
  logicalToPhysical: number[][][];
  /** [layers][experts] replicas of each logical expert (>= 1, summing to `replicas`). */
  logicalCount: number[][];
}

const f32 = Math.fround;

/**
 * Packs n weighted items into `packs` packs of exactly n/packs items each, heaviest item first
 * into the lightest pack that still has room.
 * @param weight [n] weight of each item
 * @returns packIndex: [n] the pack of each item; rankInPack: [n] its position in that pack
 */
export function balancedPacking(weight: readonly number[], packs: number): { packIndex: number[]; rankInPack: number[] } {
  const n = weight.length;
  if (n % packs !== 0) throw new PlacementError(`balancedPacking: ${n} items do not split evenly into ${packs} packs`);
  const perPack = n / packs;
  if (perPack === 1) return { packIndex: weight.map((_, i) => i), rankInPack: weight.map(() => 0) };
  const order = weight.map((_, i) => i).sort((a, b) => f32(weight[b]!) - f32(weight[a]!) || a - b);
  const packWeight = new Array<number>(packs).fill(0);
  const packItems = new Array<number>(packs).fill(0);
  const packIndex = new Array<number>(n).fill(-1);
  const rankInPack = new Array<number>(n).fill(-1);
  for (const item of order) {
    let pack = -1;
    for (let p = 0; p < packs; p++) {
      if (packItems[p]! < perPack && (pack < 0 || packWeight[p]! < packWeight[pack]!)) pack = p;
    }
    packIndex[item] = pack;
    rankInPack[item] = packItems[pack]!;
    packWeight[pack] = f32(packWeight[pack]! + f32(weight[item]!));
    packItems[pack]!++;
  }
  return { packIndex, rankInPack };
}

/**
 * Replicates `weight.length` logical experts into `physical` replicas: each extra replica goes to
 * the expert with the highest load per replica, so the largest replica load is minimized.
 * @param weight [logical] load of each logical expert
 * @returns physToLog: [physical] logical expert of each replica (the first `logical` are the
 *   experts themselves); rank: [physical] replica rank; count: [logical] replicas per expert
 */
export function replicateExperts(weight: readonly number[], physical: number): { physToLog: number[]; rank: number[]; count: number[] } {
  const logical = weight.length;
  if (physical < logical) throw new PlacementError(`replicateExperts: ${physical} replicas cannot hold ${logical} experts`);
  const physToLog = Array.from({ length: physical }, (_, i) => (i < logical ? i : -1));
  const rank = new Array<number>(physical).fill(0);
  const count = new Array<number>(logical).fill(1);
  for (let i = logical; i < physical; i++) {
    let best = 0;
    for (let e = 1; e < logical; e++) if (f32(weight[e]! / count[e]!) > f32(weight[best]! / count[best]!)) best = e;
    physToLog[i] = best;
    rank[i] = count[best]!;
    count[best]!++;
  }
  return { physToLog, rank, count };
}

/** inverse[perm[i]] = i. */
function inverse(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** One layer, hierarchical policy: [replicas] physical->logical, [replicas] replica rank, [experts] counts. */
function hierarchicalLayer(
  weight: readonly number[],
  replicas: number,
  groups: number,
  nodes: number,
  gpus: number,
): { physToLog: number[]; physRank: number[]; count: number[] } {
  const experts = weight.length;
  const groupSize = experts / groups;
  const groupsPerNode = groups / nodes;
  const perGpu = replicas / gpus;
  const expertsPerNode = experts / nodes;
  const replicasPerNode = replicas / nodes;

  // Step 1: pack groups onto nodes. mlog ("middle logical") numbers experts node by node.
  const groupLoad = Array.from({ length: groups }, (_, g) => {
    let sum = 0;
    for (let i = 0; i < groupSize; i++) sum = f32(sum + weight[g * groupSize + i]!);
    return sum;
  });
  const groupPack = balancedPacking(groupLoad, nodes);
  const logToMlog = weight.map((_, e) => {
    const g = Math.floor(e / groupSize);
    return (groupPack.packIndex[g]! * groupsPerNode + groupPack.rankInPack[g]!) * groupSize + (e % groupSize);
  });
  const mlogToLog = inverse(logToMlog);

  const physToLog = new Array<number>(replicas);
  const physRank = new Array<number>(replicas);
  const mlogCount = new Array<number>(experts);
  for (let node = 0; node < nodes; node++) {
    // Step 2: replicate experts within the node.
    const nodeLoad = Array.from({ length: expertsPerNode }, (_, j) => weight[mlogToLog[node * expertsPerNode + j]!]!);
    const rep = replicateExperts(nodeLoad, replicasPerNode);
    rep.count.forEach((c, j) => (mlogCount[node * expertsPerNode + j] = c));
    // Step 3: pack the node's replicas onto its GPUs, by load per replica.
    const replicaLoad = rep.physToLog.map((j) => f32(nodeLoad[j]! / rep.count[j]!));
    const pack = balancedPacking(replicaLoad, gpus / nodes);
    const slotToPhys = inverse(pack.packIndex.map((p, i) => p * perGpu + pack.rankInPack[i]!));
    for (let slot = 0; slot < replicasPerNode; slot++) {
      const phys = slotToPhys[slot]!;
      physToLog[node * replicasPerNode + slot] = mlogToLog[node * expertsPerNode + rep.physToLog[phys]!]!;
      physRank[node * replicasPerNode + slot] = rep.rank[phys]!;
    }
  }
  return { physToLog, physRank, count: logToMlog.map((m) => mlogCount[m]!) };
}

function assertOptions(experts: number, o: EplbOptions): void {
  for (const [name, v] of Object.entries(o)) {
    if (!Number.isInteger(v) || v < 1) throw new PlacementError(`eplb: ${name}=${v} must be a positive integer`);
  }
  if (o.gpus % o.nodes !== 0) throw new PlacementError(`eplb: gpus=${o.gpus} is not a multiple of nodes=${o.nodes}`);
  if (o.replicas % o.gpus !== 0) throw new PlacementError(`eplb: replicas=${o.replicas} is not a multiple of gpus=${o.gpus} (every GPU holds as many)`);
  if (o.replicas < experts) throw new PlacementError(`eplb: replicas=${o.replicas} cannot hold the ${experts} logical experts`);
  if (experts % o.groups !== 0) throw new PlacementError(`eplb: groups=${o.groups} does not divide the ${experts} experts`);
}

/**
 * EPLB's entry point.
 * @param weight [layers][experts] load of each logical expert (tokens, or a moving average of them)
 * @returns the plan: physicalToLogical [layers][replicas], logicalToPhysical [layers][experts][X],
 *   logicalCount [layers][experts], and the policy used
 */
export function rebalanceExperts(weight: readonly (readonly number[])[], options: EplbOptions): EplbPlan {
  if (weight.length === 0) throw new PlacementError('eplb: the loads have no layers');
  const experts = weight[0]!.length;
  weight.forEach((row, l) => {
    if (row.length !== experts) throw new PlacementError(`eplb: layer ${l} has ${row.length} expert loads, layer 0 has ${experts}`);
    row.forEach((v, e) => {
      if (!(Number.isFinite(v) && v >= 0)) throw new PlacementError(`eplb: load of layer ${l} expert ${e} is ${v}; loads are finite and >= 0`);
    });
  });
  assertOptions(experts, options);
  const { replicas, groups, nodes, gpus } = options;
  const hierarchical = groups % nodes === 0;
  const layers = weight.map((row) => (hierarchical ? hierarchicalLayer(row, replicas, groups, nodes, gpus) : hierarchicalLayer(row, replicas, 1, 1, gpus)));
  const maxCount = Math.max(...layers.flatMap((l) => l.count));
  const logicalToPhysical = layers.map((l) => {
    const table = Array.from({ length: experts }, () => new Array<number>(maxCount).fill(-1));
    l.physToLog.forEach((e, p) => (table[e]![l.physRank[p]!] = p));
    return table;
  });
  return {
    policy: hierarchical ? 'hierarchical' : 'global',
    physicalToLogical: layers.map((l) => l.physToLog),
    logicalToPhysical,
    logicalCount: layers.map((l) => l.count),
  };
}

/**
 * Tokens each GPU would process under `plan` if every replica of an expert takes an equal share
 * of its load. weight: [layers][experts]; returns [layers][gpus].
 */
export function gpuLoads(weight: readonly (readonly number[])[], plan: EplbPlan, gpus: number): number[][] {
  return plan.physicalToLogical.map((row, l) => {
    const perGpu = row.length / gpus;
    const loads = new Array<number>(gpus).fill(0);
    row.forEach((e, p) => (loads[Math.floor(p / perGpu)]! += weight[l]![e]! / plan.logicalCount[l]![e]!));
    return loads;
  });
}

/** max / mean of `loads` (1 when perfectly even; 1 for all zeros). */
export function imbalance(loads: readonly number[]): number {
  const total = loads.reduce((a, b) => a + b, 0);
  if (total === 0) return 1;
  return Math.max(...loads) / (total / loads.length);
}
