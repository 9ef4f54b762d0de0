import { afterEach, describe, expect, it } from 'vitest';
import { dataPlaneChildExecArgv, DATA_PLANE_NODE_FLAGS } from '../src/transport/node-flags';

const parentArgv = process.execArgv;
afterEach(() => {
  process.execArgv = parentArgv;
});

describe('dataPlaneChildExecArgv: the flags a forked rank runs with', () => {
  it('keeps the parent\'s flags and its tsx loader, and adds the data plane\'s', () => {
    process.execArgv = ['--import', 'tsx', '--max-old-space-size=512'];
    expect(dataPlaneChildExecArgv()).toEqual([...DATA_PLANE_NODE_FLAGS, '--import', 'tsx', '--max-old-space-size=512']);
  });

  it('drops a script given with -e or -p, which the child would run in place of its module (and fork again)', () => {
    process.execArgv = ['--import', 'tsx', '-e', 'forkRanks()', '--max-old-space-size=512', '--print=1', '-p', '2'];
    expect(dataPlaneChildExecArgv()).toEqual([...DATA_PLANE_NODE_FLAGS, '--import', 'tsx', '--max-old-space-size=512']);
  });
});
