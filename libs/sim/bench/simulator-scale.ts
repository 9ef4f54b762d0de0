/**
 * How the cluster simulator's own time grows with the cluster: DeepSeek-V3's model on 64 to 2048
 * GPUs, layers and micro-batches growing with it, DualPipe. Prints a Markdown table.
 *
 *   cd libs/sim && npx tsx bench/simulator-scale.ts
 *
 * Figures depend on the machine; the point is the last column (µs of simulator time per unit of
 * GPUs x layers x micro-batches), which must not grow.
 */
import { DEEPSEEK_V3_PRESET, simulateCluster, type ClusterSimConfig } from '../src';

const v3 = DEEPSEEK_V3_PRESET.config;
const rows: { gpus: number; pp: number; ep: number; layers: number; microBatches: number }[] = [
  { gpus: 64, pp: 4, ep: 16, layers: 16, microBatches: 8 },
  { gpus: 128, pp: 4, ep: 32, layers: 16, microBatches: 16 },
  { gpus: 256, pp: 8, ep: 32, layers: 32, microBatches: 16 },
  { gpus: 512, pp: 8, ep: 64, layers: 32, microBatches: 32 },
  { gpus: 1024, pp: 16, ep: 64, layers: 61, microBatches: 64 },
  { gpus: 2048, pp: 16, ep: 64, layers: 61, microBatches: 120 },
];

console.log('| GPUs | PP x EP | layers | micro-batches | G x L x M | ops | events | sim wall s | µs per G x L x M | heap MiB |');
console.log('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const config: ClusterSimConfig = {
    ...v3,
    model: { ...v3.model, layers: r.layers },
    layout: { ...v3.layout, gpus: r.gpus, pipelineRanks: r.pp, expertParallel: r.ep },
    microBatches: r.microBatches,
  };
  global.gc?.();
  const began = performance.now();
  const result = simulateCluster(config);
  const wall = performance.now() - began;
  const heap = process.memoryUsage().heapUsed / 2 ** 20;
  const product = r.gpus * r.layers * r.microBatches;
  console.log(
    `| ${r.gpus} | ${r.pp} x ${r.ep} | ${r.layers} | ${r.microBatches} | ${product.toLocaleString('en-US')} | ${result.simulator.tasks} | ${result.simulator.events} | ${(wall / 1e3).toFixed(2)} | ${((wall * 1e3) / product).toFixed(3)} | ${heap.toFixed(0)} |`,
  );
}
console.log(`\npeak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
