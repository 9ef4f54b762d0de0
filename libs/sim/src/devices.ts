/**
 * Device profiles the `sim` backend models: dense peak throughput by dtype, HBM bandwidth, and
 * the per-GPU links of an 8-GPU HGX-style node (NVLink through NVSwitch inside a node, one NIC
 * per GPU between nodes).
 *
 * Conventions, the same for every profile:
 * - TFLOP/s are DENSE tensor-core figures. NVIDIA's datasheets print Hopper/Ampere tensor figures
 *   "with sparsity"; the dense figure is half of it. `fp32` is the non-tensor-core FP32 rate,
 *   `tf32` the tensor-core TF32 rate.
 * - Link bandwidths are per GPU, unidirectional, GB/s (1e9 bytes/s). NVIDIA quotes NVLink as the
 *   bidirectional total per GPU, so it is halved here. NICs are quoted in Gb/s: 400 Gb/s = 50 GB/s.
 * - Latencies are not on datasheets; they are order-of-magnitude estimates of one small
 *   GPU-to-GPU message (about 2 µs through NVSwitch, about 5 µs across an InfiniBand fabric incl.
 *   PCIe to the NIC). They matter only for tiny frames; bandwidth dominates the all-to-alls here.
 */
import type { LinkModel, LinkSpec } from './link-model';

export type Dtype = 'fp8' | 'bf16' | 'tf32' | 'fp32';

export interface DeviceProfile {
  name: string;
  description: string;
  /** Dense peak, TFLOP/s, by dtype; `fp8` absent where the device has no fp8 tensor cores. */
  tflops: { fp8?: number; bf16: number; tf32: number; fp32: number };
  /** HBM bandwidth, GB/s. */
  hbmGBps: number;
  /** HBM capacity, GB (informational). */
  hbmGB: number;
  /** NVLink per GPU, unidirectional. */
  intra: LinkSpec;
  /** Network (InfiniBand NIC) per GPU, unidirectional. */
  inter: LinkSpec;
  /** GPUs per node in the reference system (the default of backendOptions.nodeSize). */
  gpusPerNode: number;
}

const NVLINK_LATENCY_US = 2;
const IB_LATENCY_US = 5;

export const DEVICE_PROFILES: Readonly<Record<string, DeviceProfile>> = {
  H800: {
    name: 'H800',
    description: 'NVIDIA H800 SXM5 80GB, 8 per node, 400 Gb/s InfiniBand per GPU (the DeepSeek-V3 cluster)',
    // Compute: same Hopper SXM5 die and clocks as the H100 SXM (NVIDIA H800 product brief; the
    // export variant cuts NVLink and FP64, not the tensor cores): FP8 3958 / BF16 1979 / TF32 989
    // TFLOP/s with sparsity -> halved; FP32 67 TFLOP/s.
    tflops: { fp8: 1979, bf16: 989.5, tf32: 494.5, fp32: 67 },
    // HBM3 80 GB at 3.35 TB/s, as the H100 SXM (NVIDIA H800 SXM5 product brief).
    hbmGBps: 3350,
    hbmGB: 80,
    // NVLink 400 GB/s bidirectional per GPU (NVIDIA H800 product brief) -> 200 GB/s each way.
    // DeepSeek-V3 Technical Report (arXiv:2412.19437), §3.2.2: "NVLink offers a bandwidth of
    // 160 GB/s, roughly 3.2 times that of IB (50 GB/s)" -- the achieved figures; we keep the spec.
    intra: { bandwidthGBps: 200, latencyUs: NVLINK_LATENCY_US },
    // DeepSeek-V3 Technical Report §3.1/§3.2.2: nodes of 8 H800 over NVLink/NVSwitch, InfiniBand
    // between nodes at 50 GB/s per GPU (one 400 Gb/s CX7 NIC per GPU).
    inter: { bandwidthGBps: 50, latencyUs: IB_LATENCY_US },
    gpusPerNode: 8,
  },
  H100: {
    name: 'H100',
    description: 'NVIDIA H100 SXM5 80GB, DGX/HGX H100 node, 400 Gb/s InfiniBand (ConnectX-7) per GPU',
    // NVIDIA H100 Tensor Core GPU datasheet, SXM column: FP8 3,958 / BF16 1,979 / TF32 989
    // TFLOPS (with sparsity) -> dense halves; FP32 67 TFLOPS; GPU memory 80 GB at 3.35 TB/s.
    tflops: { fp8: 1979, bf16: 989.5, tf32: 494.5, fp32: 67 },
    hbmGBps: 3350,
    hbmGB: 80,
    // Same datasheet: NVLink 900 GB/s (bidirectional) -> 450 GB/s each way.
    intra: { bandwidthGBps: 450, latencyUs: NVLINK_LATENCY_US },
    // NVIDIA DGX H100 datasheet: 8x single-port ConnectX-7, 400 Gb/s InfiniBand each -> 50 GB/s.
    inter: { bandwidthGBps: 50, latencyUs: IB_LATENCY_US },
    gpusPerNode: 8,
  },
  H200: {
    name: 'H200',
    description: 'NVIDIA H200 SXM 141GB, DGX/HGX H200 node, 400 Gb/s InfiniBand per GPU',
    // NVIDIA H200 Tensor Core GPU datasheet, SXM column: FP8 3,958 / BF16 1,979 / TF32 989
    // TFLOPS (with sparsity) -> dense halves; FP32 67 TFLOPS; 141 GB HBM3e at 4.8 TB/s.
    tflops: { fp8: 1979, bf16: 989.5, tf32: 494.5, fp32: 67 },
    hbmGBps: 4800,
    hbmGB: 141,
    // Same datasheet: NVLink 900 GB/s (bidirectional) -> 450 GB/s each way.
    intra: { bandwidthGBps: 450, latencyUs: NVLINK_LATENCY_US },
    // NVIDIA DGX H200 datasheet: 8x ConnectX-7 at 400 Gb/s InfiniBand -> 50 GB/s per GPU.
    inter: { bandwidthGBps: 50, latencyUs: IB_LATENCY_US },
    gpusPerNode: 8,
  },
  A100: {
    name: 'A100',
    description: 'NVIDIA A100 SXM4 80GB, DGX/HGX A100 node, 200 Gb/s HDR InfiniBand per GPU',
    // NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column: BF16 312 / TF32 156 TFLOPS dense
    // (624 / 312 with sparsity); FP32 19.5 TFLOPS; no FP8; HBM2e 80 GB at 2,039 GB/s.
    tflops: { bf16: 312, tf32: 156, fp32: 19.5 },
    hbmGBps: 2039,
    hbmGB: 80,
    // Same datasheet: NVLink 600 GB/s (bidirectional) -> 300 GB/s each way.
    intra: { bandwidthGBps: 300, latencyUs: NVLINK_LATENCY_US },
    // NVIDIA DGX A100 datasheet: 8x single-port ConnectX-6 VPI, 200 Gb/s HDR InfiniBand -> 25 GB/s.
    inter: { bandwidthGBps: 25, latencyUs: IB_LATENCY_US },
    gpusPerNode: 8,
  },
};

/** The profile named is not one we know; lists the known ones. An InvalidRequestError (INVALID_ARGUMENT). */
export class UnknownDeviceProfileError extends Error {
  override readonly name = 'UnknownDeviceProfileError';
}

/** The profile asked for a dtype the device has no tensor cores for (fp8 on A100). */
export class UnsupportedDtypeError extends Error {
  override readonly name = 'UnsupportedDtypeError';
}

/** The profile called `name` (case-insensitive: "h800" is H800). */
export function deviceProfile(name: string, field = 'backendOptions.profile'): DeviceProfile {
  const found = Object.values(DEVICE_PROFILES).find((p) => p.name.toLowerCase() === name.trim().toLowerCase());
  if (!found) {
    throw new UnknownDeviceProfileError(
      `unknown device profile "${name}" (${field}); known profiles: ${Object.keys(DEVICE_PROFILES).join(', ')}`,
    );
  }
  return found;
}

/** Dense peak of `dtype` on `profile`, FLOP/s. */
export function peakFlops(profile: DeviceProfile, dtype: Dtype): number {
  const tflops = profile.tflops[dtype];
  if (tflops === undefined) {
    const has = (Object.keys(profile.tflops) as Dtype[]).join(', ');
    throw new UnsupportedDtypeError(`device ${profile.name} has no ${dtype} tensor cores; it has ${has}`);
  }
  return tflops * 1e12;
}

/** The links of `profile` for ranks grouped `nodeSize` to a node, slowed by `dilation`. */
export function linkModelOf(profile: DeviceProfile, nodeSize: number, dilation: number): LinkModel {
  return { nodeSize, dilation, intra: { ...profile.intra }, inter: { ...profile.inter }, sharing: 'port' };
}
