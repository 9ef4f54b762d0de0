// The model's math, forward and backward, for one worker's share of a step.
//
// Shapes: T tokens this worker holds, H hidden, F expert FFN width, V vocabulary, E routed
// experts, k = top-k, slot s = t*k + j. A matrix is { shape: [rows, cols], data: Float32Array },
// row-major. Every function mirrors the reference trainer's (libs/model) arithmetic: float64
// accumulation where it accumulates, one rounding to float32 when it stores. Parity with the
// reference needs about 1e-5 relative on the loss; replicas stay equal because the dense update
// only uses all-reduced gradients, which are bitwise the same on every rank.

export * from './math-core.mjs';
export * from './math-moe.mjs';
