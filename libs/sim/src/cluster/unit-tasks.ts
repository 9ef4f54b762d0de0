/**
 * A pipeline plan as engine tasks, one task a unit: each unit's duration given, the transfers
 * between stages of `p2pMs` each (0: the ideal pipeline of DeepSeek-V3 Table 2). This is the
 * level the bubble formulas are stated at: F, B, W and F&B are fixed op times.
 */
import { type ChunkRef, type PipelinePlan, type PipelineUnit } from '@moe/schedule';
import { runEngine, SimulationError, type EngineResult, type SimTask } from './engine';

export interface UnitTimes {
  /** Forward chunk. */
  F: number;
  /** Full backward chunk (input and weight gradients). */
  B: number;
  /** Weight-gradient chunk; a backward that defers it takes B - W. */
  W: number;
  /** A forward and a backward chunk overlapped. */
  FB: number;
}

/** Where each (micro-batch, stage)'s forward and backward ends: the task ids the next stage waits for. */
export class ChunkIndex {
  private readonly forwards = new Map<number, number>();
  private readonly backwards = new Map<number, number>();
  constructor(private readonly stages: number) {}
  private key = (c: ChunkRef) => c.microBatch * this.stages + c.stage;
  setForward(c: ChunkRef, task: number) {
    this.forwards.set(this.key(c), task);
  }
  setBackward(c: ChunkRef, task: number) {
    this.backwards.set(this.key(c), task);
  }
  forward(c: ChunkRef): number | undefined {
    return this.forwards.get(this.key(c));
  }
  backward(c: ChunkRef): number | undefined {
    return this.backwards.get(this.key(c));
  }
}

/**
 * Two passes: first every unit becomes a compute task (so every chunk has its task id), then
 * the data-flow dependencies are filled in: F(m, s) after F(m, s-1), B(m, s) after B(m, s+1)
 * and F(m, s), W after its B; a dependency on another rank goes through a transfer task.
 */
export function unitTasks(plan: PipelinePlan, times: UnitTimes, p2pMs = 0): { tasks: SimTask[]; unitOf: PipelineUnit[] } {
  const tasks: SimTask[] = [];
  const unitOf: PipelineUnit[] = [];
  const index = new ChunkIndex(plan.stages);
  plan.units.forEach((units, rank) => {
    for (const u of units) {
      const ms = u.kind === 'F' ? times.F : u.kind === 'FB' ? times.FB : u.kind === 'W' ? times.W : u.deferWeights ? times.B - times.W : times.B;
      const id = tasks.push({ device: rank, stream: 'compute', ms, deps: [] }) - 1;
      unitOf.push(u);
      if (u.kind === 'F' || u.kind === 'FB') index.setForward(u.kind === 'F' ? u.chunk : u.forward, id);
      if (u.kind === 'B' || u.kind === 'FB') index.setBackward(u.kind === 'B' ? u.chunk : u.backward, id);
    }
  });
  const across = (from: number, toRank: number): number => {
    if (tasks[from]!.device === toRank) return from;
    return tasks.push({ device: tasks[from]!.device, stream: 'comm', ms: p2pMs, deps: [from] }) - 1;
  };
  const need = (id: number | undefined, what: string): number => {
    if (id === undefined) throw new SimulationError(`${plan.schedule}: ${what} is never run (the plan leaves out a chunk another one needs)`);
    return id;
  };
  const unitCount = unitOf.length;
  for (let id = 0; id < unitCount; id++) {
    const u = unitOf[id]!;
    const rank = tasks[id]!.device;
    const deps = tasks[id]!.deps;
    const forwardDeps = (c: ChunkRef) => {
      if (c.stage > 0) deps.push(across(need(index.forward({ ...c, stage: c.stage - 1 }), `F(m${c.microBatch}, s${c.stage - 1})`), rank));
    };
    const backwardDeps = (c: ChunkRef) => {
      deps.push(need(index.forward(c), `F(m${c.microBatch}, s${c.stage})`));
      if (c.stage < plan.stages - 1) deps.push(across(need(index.backward({ ...c, stage: c.stage + 1 }), `B(m${c.microBatch}, s${c.stage + 1})`), rank));
    };
    if (u.kind === 'F') forwardDeps(u.chunk);
    if (u.kind === 'B') backwardDeps(u.chunk);
    if (u.kind === 'FB') {
      forwardDeps(u.forward);
      backwardDeps(u.backward);
    }
    if (u.kind === 'W') deps.push(need(index.backward(u.chunk), `B(m${u.chunk.microBatch}, s${u.chunk.stage})`));
    if (u.alsoWaitsForInputOf) forwardDeps(u.alsoWaitsForInputOf);
  }
  return { tasks, unitOf };
}

export interface PipelineBubble {
  /** When the last unit of any rank ended. */
  makespanMs: number;
  /** [ranks] makespan minus the rank's busy time: the time it idles in the step. */
  bubbleMs: number[];
  result: EngineResult;
}

/** Simulates `plan` with fixed unit times; the bubble of each rank. */
export function simulateUnits(plan: PipelinePlan, times: UnitTimes, p2pMs = 0): PipelineBubble {
  const { tasks } = unitTasks(plan, times, p2pMs);
  const result = runEngine(tasks, { devices: plan.ranks });
  return { makespanMs: result.makespanMs, bubbleMs: Array.from(result.computeBusyMs, (b) => result.makespanMs - b), result };
}
