import { describe, expect, it } from 'vitest';
import { allToAllTraffic, PORTS, runEngine, SimulationError, type SimTask } from '../src';

const compute = (device: number, ms: number, deps: number[] = []): SimTask => ({ device, stream: 'compute', ms, deps });
const send = (device: number, port: number, wireMs: number, latencyMs: number, deps: number[] = []): SimTask => ({
  device,
  stream: 'comm',
  ms: latencyMs,
  wire: [{ port, ms: wireMs }],
  deps,
});

describe('runEngine', () => {
  it('runs a device\'s compute ops one at a time in list order, each after its dependencies', () => {
    const r = runEngine([compute(0, 2), compute(0, 3), compute(1, 1, [1])], { devices: 2 });
    expect(Array.from(r.start)).toEqual([0, 2, 5]);
    expect(r.makespanMs).toBe(6);
    expect(Array.from(r.computeBusyMs)).toEqual([5, 1]);
  });

  it('queues transfers on a hot port first in, first out; another port runs alongside; latency is not held on the port', () => {
    const r = runEngine([send(0, PORTS.nic, 4, 1), send(0, PORTS.nic, 4, 1), send(0, PORTS.nvlink, 4, 1)], { devices: 1 });
    expect(Array.from(r.end)).toEqual([5, 9, 5]);
  });

  it('slows compute by the communication share only while a transfer is on the wire', () => {
    // 10 ms of compute; a 5 ms transfer from t=0 takes half the SMs: 5 ms at half speed (2.5 done), then 7.5 ms at full speed.
    const tasks = [compute(0, 10), send(0, PORTS.nic, 5, 0)];
    expect(runEngine(tasks, { devices: 1 }).end[0]).toBe(10);
    expect(runEngine(tasks, { devices: 1, commComputeShare: 0.5 }).end[0]).toBeCloseTo(12.5, 9);
  });

  it('a compute op waiting on a transfer holds the stream: later ops wait behind it', () => {
    const r = runEngine([send(0, PORTS.nic, 5, 0), compute(0, 1, [0]), compute(0, 1)], { devices: 1 });
    expect(r.start[2]).toBe(6);
  });

  it('host time on a frame follows its wire on the device\'s host port: a lone frame takes the sum, a stream of frames the larger of the two', () => {
    const frames = (wireMs: number, hostMs: number): SimTask => ({ device: 0, stream: 'comm', ms: 0, wire: [0, 1, 2].map(() => ({ port: PORTS.nic, ms: wireMs, hostMs })), deps: [] });
    expect(runEngine([{ ...frames(2, 1), wire: [{ port: PORTS.nic, ms: 2, hostMs: 1 }] }], { devices: 1 }).end[0]).toBe(3);
    // wire-bound: frames leave the port at 2, 4, 6; the host takes 1 ms of each: done at 7.
    expect(runEngine([frames(2, 1)], { devices: 1 }).end[0]).toBe(7);
    // host-bound: the first frame leaves at 2, then the host takes 3 ms of each, one at a time: done at 11.
    expect(runEngine([frames(2, 3)], { devices: 1 }).end[0]).toBe(11);
    // two ops share the one host port: the second op's frame, off its own port at 2, waits for the first op's three
    expect(Array.from(runEngine([frames(2, 3), { ...frames(2, 3), wire: [{ port: PORTS.nvlink, ms: 2, hostMs: 3 }] }], { devices: 1 }).end)).toEqual([11, 14]);
  });

  it('an op\'s own host work follows all its bytes on the host port: ops in flight together queue for it', () => {
    const op = (hostMs: number, deps: number[] = []): SimTask => ({ device: 0, stream: 'comm', ms: 1, wire: [{ port: PORTS.nic, ms: 2, hostMs: 1 }], hostMs, deps });
    // alone: wire 2, its bytes' host work 1, its own 4, latency 1
    expect(runEngine([op(4)], { devices: 1 }).end[0]).toBe(8);
    // two at once: the second's bytes leave the port at 4 and wait for the first's host work (to 7), then 1 + 4, latency 1
    expect(Array.from(runEngine([op(4), op(4)], { devices: 1 }).end)).toEqual([8, 13]);
    // one after the other: nothing to wait for
    expect(Array.from(runEngine([op(4), op(4, [0])], { devices: 1 }).end)).toEqual([8, 16]);
    // no host work on the bytes (no data plane measured): the second still waits for the first's own work (6), 4 more, latency 1
    const bare = (hostMs: number): SimTask => ({ ...op(hostMs), wire: [{ port: PORTS.nic, ms: 2 }] });
    expect(Array.from(runEngine([bare(4), bare(4)], { devices: 1 }).end)).toEqual([7, 11]);
  });

  it('a compute op\'s launch holds the stream with the device idle: the op starts after it and its busy time leaves it out', () => {
    const r = runEngine([{ ...compute(0, 2), launchMs: 1 }, { ...compute(0, 3), launchMs: 1 }], { devices: 1 });
    expect(Array.from(r.start)).toEqual([1, 4]);
    expect(r.makespanMs).toBe(7);
    expect(r.computeBusyMs[0]).toBe(5);
  });

  it('a negative latency shortens a transfer but never ends it before it began', () => {
    const r = runEngine([send(0, PORTS.nic, 4, -1), send(0, PORTS.nvlink, 4, -10, [0])], { devices: 1 });
    expect(Array.from(r.end)).toEqual([3, 3]);
  });

  it('names the first task that can never run when dependencies form a cycle', () => {
    expect(() => runEngine([compute(0, 1, [1]), compute(1, 1, [0])], { devices: 2 })).toThrow(SimulationError);
    expect(() => runEngine([compute(0, 1, [1]), compute(1, 1, [0])], { devices: 2 })).toThrow(/2 of 2 tasks never ran \(first: task 0/);
  });
});

describe('allToAllTraffic', () => {
  const shape = { tokens: 100, topK: 4, hiddenSize: 10, epSize: 4, nodeSize: 4, routedExperts: 8, maxNodes: Infinity };

  it('inside one node: (W-1)/W of the T*k rows leave the GPU, all on NVLink', () => {
    expect(allToAllTraffic(shape, 2)).toEqual({ nvlinkBytes: 100 * 4 * (3 / 4) * 10 * 2, nicBytes: 0 });
  });

  it('node-limited routing puts fewer bytes on the NIC than unlimited routing', () => {
    const wide = { ...shape, epSize: 64, nodeSize: 8, routedExperts: 256, topK: 8 };
    const limited = allToAllTraffic({ ...wide, maxNodes: 4 }, 1).nicBytes;
    const unlimited = allToAllTraffic(wide, 1).nicBytes;
    expect(limited).toBeLessThan(unlimited);
    // A token crosses InfiniBand to at most 4 nodes: T * 4 rows of H one-byte values.
    expect(limited).toBeLessThanOrEqual(100 * 4 * 10);
  });
});
