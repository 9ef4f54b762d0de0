import { describe, expect, it } from 'vitest';
import { calibrateDilation, MachineTooBusyError } from '../src/run/bench-calibration';

// The modeled links of a naive step: 0.2 ms per unit of dilation; the bench wants 100 ms of them.
const modeledSlope = 0.2;
const targetMs = 100;

/** A probe that answers from a list, one comm figure a call, and counts its calls. */
function scripted(comms: number[]) {
  const calls: number[] = [];
  const probe = async (dilation: number) => {
    calls.push(dilation);
    const comm = comms[calls.length - 1];
    if (comm === undefined) throw new Error(`probe called ${calls.length} times, only ${comms.length} answers scripted`);
    return { comm, compute: 10 };
  };
  return { probe, calls };
}

describe('the bench\'s dilation calibration', () => {
  it('probes a naive step at 4x and 16x the dilation the model gives the target, and sets the dilation from the measured slope', async () => {
    // probes at 2000 and 8000: 500 ms of host time under each, slope 0.25 (the model says 0.2)
    const { probe, calls } = scripted([500 + 0.25 * 2000, 500 + 0.25 * 8000]);
    const c = await calibrateDilation({ targetMs, modeledSlope, probe });
    expect(calls).toEqual([2000, 8000]);
    expect(c.slope).toBeCloseTo(0.25, 12);
    expect(c.dilation).toBeCloseTo(400, 9);
    expect(c.hostCommMs).toBeCloseTo(500, 9);
    expect(c.tries).toBe(1);
  });

  it('measures again when a busy machine makes the slope implausible, and keeps the first plausible pair', async () => {
    // first pair: the host slowed the low probe so much the slope is negative; second pair is fine
    const { probe, calls } = scripted([3000, 2500, 400 + 0.2 * 2000, 400 + 0.2 * 8000]);
    const c = await calibrateDilation({ targetMs, modeledSlope, probe });
    expect(calls).toHaveLength(4);
    expect(c.tries).toBe(2);
    expect(c.dilation).toBeCloseTo(500, 9);
    expect(c.probes.map((p) => p.measure.comm)).toEqual([800, 2000]);
  });

  it('refuses after a bounded number of tries with a near-zero or negative slope, saying what it measured and what to do', async () => {
    // every pair: comm barely moves (slope 0.001) or falls, as on a machine whose load swings
    const { probe, calls } = scripted([2000, 2006, 2500, 2100, 1800, 1810]);
    const refused = calibrateDilation({ targetMs, modeledSlope, probe, tries: 3, load: () => '9.50' });
    await expect(refused).rejects.toBeInstanceOf(MachineTooBusyError);
    await expect(refused).rejects.toThrow(/^machine too busy: .* slopes of 0\.00100, -0\.0667, 0\.00167 ms per unit of dilation in 3 tries, where the modeled links alone give 0\.200/);
    await expect(refused).rejects.toThrow(/load average 9\.50\)\. Rerun when the load is lower, or pass a larger --comm-target than 100 ms/);
    expect(calls).toHaveLength(6);
  });

  it('refuses a slope far above the model\'s as well (a probe inflated by a load spike)', async () => {
    const { probe } = scripted([500, 500 + 5 * 6000]);
    await expect(calibrateDilation({ targetMs, modeledSlope, probe, tries: 1 })).rejects.toThrow(/slopes of 5\.00 ms per unit/);
  });
});
