/**
 * Bytes by link: what each rank sent over its node's links (intra: NVLink) and between nodes
 * (inter: InfiniBand) per token it routed, and the time those bytes take on the modeled links
 * of a device profile (serialisation only: bytes / bandwidth, undilated, the port shared by all
 * of a class's peers as on a real GPU).
 */
import type { DeviceProfile } from './devices';
import type { LinkClass } from './link-model';

export interface LinkUse {
  bytes: number;
  /** bytes / tokens the rank routed. */
  bytesPerToken: number;
  /** bytes at the profile's bandwidth of this link class, ms. */
  modeledMs: number;
}

export type RankLinkUse = Record<LinkClass, LinkUse>;

/**
 * @param bytes [W] all-to-all bytes each rank sent, by class, over `steps` steps
 * @param tokensPerRank [W] tokens each rank routed over those steps
 * @returns [W] per rank and class: bytes per step, bytes per token, modeled ms per step
 */
export function linkUsage(bytes: readonly { intra: number; inter: number }[], tokensPerRank: readonly number[], steps: number, profile: DeviceProfile): RankLinkUse[] {
  if (bytes.length !== tokensPerRank.length) throw new RangeError(`link bytes for ${bytes.length} ranks but tokens for ${tokensPerRank.length}`);
  const per = (b: number, tokens: number, cls: LinkClass): LinkUse => ({
    bytes: steps > 0 ? b / steps : 0,
    bytesPerToken: tokens > 0 ? b / tokens : 0,
    modeledMs: steps > 0 ? b / steps / (profile[cls].bandwidthGBps * 1e6) : 0,
  });
  return bytes.map((b, r) => ({ intra: per(b.intra, tokensPerRank[r]!, 'intra'), inter: per(b.inter, tokensPerRank[r]!, 'inter') }));
}
