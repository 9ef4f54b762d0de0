/**
 * The bench's transport line: the all-to-all a bench step does (one frame of the step's size from
 * every rank to every other), between `workers` processes, over raw TCP and over every data plane
 * (gRPC Exchange, the socket data plane over Unix sockets and over TCP), in the same run.
 */
import { encodedBytes, measureAllToAll, type AllToAllPlane, type CodecName } from '@moe/comm';

export interface BenchTransportInput {
  workers: number;
  /** Tokens of the global batch (batch sequences x sequence length). */
  globalTokens: number;
  topK: number;
  /** Modeled hidden size: the columns of every row. */
  hiddenSize: number;
  dispatchCodec: CodecName;
  /** The old knob's scale: payload bytes each rank sends per measured run = seconds x 50 MB (~ a second on loopback). */
  transportSeconds: number;
  repeats: number;
}

export interface BenchTransport {
  tcpMbps: number;
  grpcMbps: number;
  planes: { plane: string; mbps: number; runs: number[]; cpuMsPerMb: number }[];
  frameBytes: number;
  world: number;
  /** What shapes the figures, for report.json's config. */
  config: { frame_bytes: number; world: number; bytes_per_rank: number; repeats: number; warmup: number; depth: number; planes: AllToAllPlane[] };
}

const PLANES: AllToAllPlane[] = ['tcp', 'grpc', 'socket', 'socket-tcp'];

/**
 * Bytes of one dispatch frame of a naive step (the largest a bench step sends; C chunks send
 * 1/C of it): T = globalTokens / workers tokens a rank, T*k slots spread evenly over the ranks.
 */
export function benchFrameBytes(i: Pick<BenchTransportInput, 'workers' | 'globalTokens' | 'topK' | 'hiddenSize' | 'dispatchCodec'>): number {
  const rowsPerPeer = Math.max(1, Math.round(((i.globalTokens / i.workers) * i.topK) / i.workers));
  return encodedBytes(rowsPerPeer, i.hiddenSize, i.dispatchCodec);
}

export async function measureBenchTransport(input: BenchTransportInput): Promise<BenchTransport> {
  const frameBytes = benchFrameBytes(input);
  const world = Math.max(2, input.workers);
  const bytesPerRank = Math.round(input.transportSeconds * 50e6);
  const depth = 2;
  const warmup = 1;
  const results = await measureAllToAll({ world, frameBytes, cols: input.hiddenSize, bytesPerRank, repeats: input.repeats, warmup, depth, planes: PLANES });
  const mbps = (plane: AllToAllPlane) => results.find((r) => r.plane === plane)!.mbPerSecond;
  return {
    tcpMbps: mbps('tcp'),
    grpcMbps: mbps('grpc'),
    planes: results.map((r) => ({ plane: r.plane, mbps: r.mbPerSecond, runs: r.runs, cpuMsPerMb: r.cpuMsPerMb })),
    frameBytes: results[0]!.frameBytes,
    world,
    config: { frame_bytes: results[0]!.frameBytes, world, bytes_per_rank: bytesPerRank, repeats: input.repeats, warmup, depth, planes: PLANES },
  };
}

/** The data planes the runs' frames went out over, as the workers reported them, e.g. "socket" or "grpc, socket". */
export function planesUsed(reported: readonly string[]): string {
  const planes = new Set(reported.flatMap((p) => p.split('+')).filter((p) => p !== ''));
  return planes.size === 0 ? 'not reported' : [...planes].sort().join(', ');
}
