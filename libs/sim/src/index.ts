// Simulated GPUs: device profiles (with their datasheet sources), the FLOP/byte cost model of a
// DeepSeek-V3-shaped layer, the link model (NVLink inside a node, InfiniBand between nodes) and
// seeded routing. No processes, no I/O: the `sim` worker backend and the cluster simulator use it.
export * from './devices';
export * from './cost-model';
export * from './link-model';
export * from './seeded-routing';
export * from './link-usage';
export * from './cluster';
