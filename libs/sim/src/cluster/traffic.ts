/**
 * Bytes one GPU puts on its NVLink and on its NIC in one expert-parallel all-to-all, in
 * expectation under uniform routing (every GPU of an EP group alike, which is what lets the
 * simulator run one GPU for all of them).
 *
 * DeepSeek-V3's dispatch (arXiv:2412.19437 §3.2.2): a token crosses InfiniBand once to each
 * other node that holds one of its experts (to the GPU with the same in-node index), then is
 * forwarded over NVLink to the GPUs of its experts. Node-limited routing (§2.1.2): a token's
 * experts lie on at most `maxNodes` nodes. So, with g GPUs a node, N nodes in the EP group,
 * k experts a token, e experts a node, and M = min(maxNodes, N) nodes chosen uniformly:
 *
 *   nodes used  u = M * (1 - C(M*e - e, k) / C(M*e, k))        (a chosen node gets >= 1 of k)
 *   IB bytes    = T * u * (1 - 1/N) * H * bytesPerValue          (own node needs no IB)
 *   NVLink bytes= T * k * (g - 1)/g * H * bytesPerValue          (every slot not on the entry GPU)
 *
 * Without node limits (maxNodes >= N) and with one GPU a node this is the plain all-to-all of
 * S = T*k rows spread evenly over the W ranks: (W-1)/W of them leave the GPU. The combine
 * moves the same rows back. Duplicate experts of one token on one GPU are counted once per slot
 * (a small overcount on NVLink).
 */
export interface AllToAllTraffic {
  /** Bytes on this GPU's NVLink port. */
  nvlinkBytes: number;
  /** Bytes on this GPU's NIC. */
  nicBytes: number;
}

export interface TrafficShape {
  /** T: tokens on this GPU in the micro-batch. */
  tokens: number;
  /** k: routed experts per token. */
  topK: number;
  /** H: values per row. */
  hiddenSize: number;
  /** GPUs in the expert-parallel group. */
  epSize: number;
  /** GPUs per node. */
  nodeSize: number;
  /** Routed experts of the model. */
  routedExperts: number;
  /** Node-limited routing's M; Infinity for none. */
  maxNodes: number;
}

/** log C(n, r) (0 for r = 0; -Infinity for r > n). */
function logChoose(n: number, r: number): number {
  if (r < 0 || r > n) return -Infinity;
  let s = 0;
  for (let i = 0; i < r; i++) s += Math.log(n - i) - Math.log(i + 1);
  return s;
}

/** Expected bytes one GPU sends per link in one all-to-all of `bytesPerValue`-byte values. */
export function allToAllTraffic(shape: TrafficShape, bytesPerValue: number): AllToAllTraffic {
  const { tokens: T, topK: k, hiddenSize: H, epSize, routedExperts } = shape;
  const g = Math.min(shape.nodeSize, epSize);
  const nodes = Math.ceil(epSize / g);
  const row = H * bytesPerValue;
  if (nodes === 1) return { nvlinkBytes: T * k * ((epSize - 1) / epSize) * row, nicBytes: 0 };
  const chosen = Math.min(shape.maxNodes, nodes);
  const perNode = routedExperts / nodes;
  const pool = chosen * perNode;
  const pUsed = 1 - Math.exp(logChoose(pool - perNode, k) - logChoose(pool, k));
  const nodesUsed = chosen * pUsed;
  return {
    nvlinkBytes: T * k * ((g - 1) / g) * row,
    nicBytes: T * nodesUsed * (1 - 1 / nodes) * row,
  };
}
