import type { Backend } from '../backend';
import { CpuBackend } from './cpu-backend';
import { isPathSpec, loadBackendModule } from './load-backend-module';
import { SimBackend } from './sim/sim-backend';

export class UnknownBackendError extends Error {
  override readonly name = 'UnknownBackendError';
}

export const BUILTIN_BACKENDS = ['cpu', 'sim'] as const;

/** A built-in backend by name ("cpu" or "sim"). Modules are loaded by `loadBackend`. */
export function createBackend(name: string): Backend {
  switch (name) {
    case 'cpu':
      return new CpuBackend();
    case 'sim':
      return new SimBackend();
    default:
      throw new UnknownBackendError(
        `unknown backend "${name}"; built-in backends: ${BUILTIN_BACKENDS.join(', ')} (a backend module is loaded with loadBackend)`,
      );
  }
}

/**
 * The backend named on the command line: a built-in name ("cpu", "sim"), or else a backend
 * module (a path starting with `.` or `/`, or a package name) imported by `loadBackendModule`.
 */
export async function loadBackend(spec: string): Promise<Backend> {
  if (!isPathSpec(spec) && (BUILTIN_BACKENDS as readonly string[]).includes(spec)) return createBackend(spec);
  if (!spec) throw new UnknownBackendError(`the backend name is empty; built-in backends: ${BUILTIN_BACKENDS.join(', ')}, or a module path`);
  return loadBackendModule(spec, (name) => createBackend(name));
}
