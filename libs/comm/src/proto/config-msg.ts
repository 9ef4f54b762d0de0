import type { BalancingKind, ModelConfig, OptimizerConfig, ScoreFunction } from '@moe/model';
import type { ModelConfigMsg, ModelConfigMsgOut, OptimizerConfigMsg } from './types';

const SCORE_TO_WIRE = { softmax: 'SOFTMAX', sigmoid: 'SIGMOID' } as const;
const BALANCING_TO_WIRE = { none: 'BALANCING_NONE', aux: 'AUX_LOSS', bias: 'BIAS' } as const;

export function modelConfigMsg(c: ModelConfig): ModelConfigMsg {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    expertFfnSize: c.expertFfnSize,
    routedExperts: c.routedExperts,
    sharedExperts: c.sharedExperts,
    topK: c.topK,
    layers: c.layers,
    scoreFunction: SCORE_TO_WIRE[c.scoreFunction],
    balancing: BALANCING_TO_WIRE[c.balancing],
    auxLossAlpha: c.auxLossAlpha,
    biasUpdateSpeed: c.biasUpdateSpeed,
    seed: c.seed,
    rmsEps: c.rmsEps,
    routerGroups: c.routerGroups,
    routerGroupTopK: c.routerGroupTopK,
  };
}

/**
 * The wire config as the plain object `parseModelConfig` validates. Enum values the worker does
 * not know come through as strings that validation then refuses by name.
 */
export function modelConfigFromMsg(m: ModelConfigMsgOut): Record<string, unknown> {
  const score = Object.entries(SCORE_TO_WIRE).find(([, w]) => w === m.scoreFunction)?.[0] as ScoreFunction | undefined;
  const balancing = Object.entries(BALANCING_TO_WIRE).find(([, w]) => w === m.balancing)?.[0] as BalancingKind | undefined;
  return {
    vocabSize: m.vocabSize,
    hiddenSize: m.hiddenSize,
    expertFfnSize: m.expertFfnSize,
    routedExperts: m.routedExperts,
    sharedExperts: m.sharedExperts,
    topK: m.topK,
    layers: m.layers,
    scoreFunction: score ?? String(m.scoreFunction),
    balancing: balancing ?? String(m.balancing),
    auxLossAlpha: m.auxLossAlpha,
    biasUpdateSpeed: m.biasUpdateSpeed,
    seed: m.seed,
    rmsEps: m.rmsEps,
    // 0 is proto3's "unset" (a sender that predates node-limited routing): no grouping.
    routerGroups: m.routerGroups || 1,
    routerGroupTopK: m.routerGroupTopK || 1,
  };
}

export function optimizerConfigMsg(o: OptimizerConfig): OptimizerConfigMsg {
  return { ...o };
}
