/** What training on `tokens` tokens costs at a simulated throughput. */
export interface TrainingCost {
  tokens: number;
  gpus: number;
  /** Wall-clock days on `gpus` GPUs. */
  days: number;
  gpuHours: number;
  pricePerGpuHour: number;
  dollars: number;
}

export function trainingCost(tokensPerSecondPerGpu: number, gpus: number, tokens: number, pricePerGpuHour: number): TrainingCost {
  const gpuSeconds = tokens / tokensPerSecondPerGpu;
  const gpuHours = gpuSeconds / 3600;
  return { tokens, gpus, days: gpuSeconds / gpus / 86400, gpuHours, pricePerGpuHour, dollars: gpuHours * pricePerGpuHour };
}
