import type { Backend } from '../backend';
import { CpuBackend } from './cpu-backend';
import { SimBackend } from './sim/sim-backend';

export class UnknownBackendError extends Error {
  override readonly name = 'UnknownBackendError';
}

/** The backend named on the command line: a built-in name. */
export function createBackend(name: string): Backend {
  switch (name) {
    case 'cpu':
      return new CpuBackend();
    case 'sim':
      return new SimBackend();
    default:
      throw new UnknownBackendError(`unknown backend "${name}"; built-in backends: cpu, sim`);
  }
}
