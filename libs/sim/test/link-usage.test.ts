import { describe, expect, it } from 'vitest';
import { deviceProfile, linkUsage } from '../src/index';

describe('linkUsage', () => {
  it('bytes per step and per token, and the modeled time at the profile bandwidth (H800: NVLink 200 GB/s, IB 50 GB/s)', () => {
    const [r0] = linkUsage([{ intra: 4e6, inter: 2e6 }], [1000], 2, deviceProfile('H800'));
    expect(r0!.intra).toEqual({ bytes: 2e6, bytesPerToken: 4000, modeledMs: 2e6 / 200e6 });
    expect(r0!.inter).toEqual({ bytes: 1e6, bytesPerToken: 2000, modeledMs: 1e6 / 50e6 });
  });
});
