/**
 * A modeled network: the links a rank's frames cross on a real cluster, by class.
 *
 * Ranks are grouped into nodes of `nodeSize` consecutive ranks (rank r is on node
 * floor(r / nodeSize)). A frame between two ranks of one node crosses the `intra` link
 * (NVLink through NVSwitch); between nodes, the `inter` link (the GPU's InfiniBand NIC).
 *
 * A frame of `bytes` bytes on a link of bandwidth B (GB/s, 1 GB = 1e9 bytes) and latency
 * lat (µs) takes, in wall-clock ms on this host:
 *
 *     ms = (lat / 1e3 + bytes / (B * 1e6)) * dilation
 *
 * The serialisation part (bytes / B) occupies the link, so frames queued behind it wait; the
 * latency part is pipelined (the next frame can start while this one is in flight).
 */
export type LinkClass = 'intra' | 'inter';

export interface LinkSpec {
  /** Unidirectional bandwidth one GPU has on this link class, GB/s (1e9 bytes/s). */
  bandwidthGBps: number;
  /** One-way latency of a frame, µs. */
  latencyUs: number;
}

/**
 * How frames share bandwidth:
 * - `port`: one queue per link class on the sending rank: frames to every peer of that class share
 *   the GPU's bandwidth, as on a real GPU (its NVLink bandwidth and its NIC are per GPU, not per pair).
 * - `pair`: one queue per destination rank: each (source, dest) pair gets the full bandwidth.
 */
export type LinkSharing = 'port' | 'pair';

export interface LinkModel {
  /** Ranks per modeled node (>= 1). */
  nodeSize: number;
  intra: LinkSpec;
  inter: LinkSpec;
  /** Time-dilation factor (>= 1): every modeled duration is multiplied by it. */
  dilation: number;
  /** Defaults to `port`. */
  sharing?: LinkSharing;
}

/** A link model that cannot work; names the field and the value. */
export class LinkModelError extends Error {
  override readonly name = 'LinkModelError';
}

/** Checks a link model; throws LinkModelError naming the bad field. */
export function validateLinkModel(model: LinkModel): LinkModel {
  const positive = (value: number, field: string, min = 0, strict = true) => {
    if (!Number.isFinite(value) || (strict ? value <= min : value < min)) {
      throw new LinkModelError(`${field}=${value} must be a finite number ${strict ? '>' : '>='} ${min} (linkModel.${field})`);
    }
  };
  if (!Number.isInteger(model.nodeSize) || model.nodeSize < 1) {
    throw new LinkModelError(`nodeSize=${model.nodeSize} must be a positive integer (linkModel.nodeSize)`);
  }
  positive(model.dilation, 'dilation', 1, false);
  for (const cls of ['intra', 'inter'] as const) {
    positive(model[cls].bandwidthGBps, `${cls}.bandwidthGBps`);
    positive(model[cls].latencyUs, `${cls}.latencyUs`, 0, false);
  }
  if (model.sharing !== undefined && model.sharing !== 'port' && model.sharing !== 'pair') {
    throw new LinkModelError(`sharing="${String(model.sharing)}" must be "port" or "pair" (linkModel.sharing)`);
  }
  return model;
}

/** The link class between two ranks when nodes hold `nodeSize` consecutive ranks. */
export function linkClassOf(source: number, dest: number, nodeSize: number): LinkClass {
  return Math.floor(source / nodeSize) === Math.floor(dest / nodeSize) ? 'intra' : 'inter';
}

/** Serialisation time of `bytes` on a link, ms of wall clock (dilated). */
export function wireMs(spec: LinkSpec, bytes: number, dilation: number): number {
  return (bytes / (spec.bandwidthGBps * 1e6)) * dilation;
}

/** Whole modeled time of one frame on an idle link: latency + bytes / bandwidth, dilated, ms. */
export function modeledTransferMs(spec: LinkSpec, bytes: number, dilation: number): number {
  return (spec.latencyUs / 1e3) * dilation + wireMs(spec, bytes, dilation);
}
