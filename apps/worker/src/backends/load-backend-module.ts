/**
 * Backend modules: `moe worker --backend ./my-backend.js` (or a package name) imports a module
 * that makes a `Backend`, so people can bring their own compute without touching this repo.
 *
 * A backend module exports a factory, as its default export or as a named `createBackend`:
 *
 * ```ts
 * import type { BackendFactory } from '@moe/worker';
 * const create: BackendFactory = async ({ builtin }) => new MyBackend(builtin('cpu'));
 * export default create;
 * ```
 *
 * The factory gets a `BackendModuleContext` (how it was named, a way to make the built-in
 * backends to wrap) and returns a `Backend` (or a promise of one). The object is checked for
 * every required method before the worker starts; a missing one is named in the error.
 */
import { createRequire } from 'node:module';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Backend } from '../backend';

/** What a backend module's factory is given. */
export interface BackendModuleContext {
  /** The --backend argument as given ("./examples/delayed-cpu-backend.ts", "my-backend-package"). */
  spec: string;
  /** The file or package entry the module was loaded from. */
  resolved: string;
  /** A fresh built-in backend, to wrap or delegate to ("cpu": real math; "sim": modeled device). */
  builtin(name: 'cpu' | 'sim'): Backend;
}

/** The function a backend module exports (default export, or a named export `createBackend`). */
export type BackendFactory = (context: BackendModuleContext) => Backend | Promise<Backend>;

/** What `import()` of a backend module may give. */
export interface BackendModule {
  default?: BackendFactory | { createBackend?: BackendFactory };
  createBackend?: BackendFactory;
}

/** A backend module could not be found, imported, or did not make a usable Backend; says which and why. */
export class BackendModuleError extends Error {
  override readonly name = 'BackendModuleError';
}

/** Methods every Backend must have (`linkModel` and `optimizerState` are optional). */
export const REQUIRED_BACKEND_METHODS = [
  'load',
  'hiddenSize',
  'topK',
  'beginStep',
  'route',
  'sharedExperts',
  'experts',
  'combineOutputs',
  'lossAndHeadBackward',
  'combineOutputsBackward',
  'expertsBackward',
  'sharedExpertsBackward',
  'routeBackward',
  'gradientsToReduce',
  'applyUpdate',
  'expertCounts',
  'snapshot',
  'close',
] as const satisfies readonly (keyof Backend)[];

/** True when `spec` names a file (starts with `.` or `/`, or is an absolute path) rather than a package. */
export function isPathSpec(spec: string): boolean {
  return spec.startsWith('.') || spec.startsWith('/') || isAbsolute(spec);
}

/**
 * Where `spec` loads from: a path is taken relative to `cwd`; a package name is resolved from
 * `cwd` first (a project that installed it), then from this repository.
 */
export function resolveBackendModule(spec: string, cwd = process.cwd()): string {
  if (isPathSpec(spec)) return resolvePath(cwd, spec);
  for (const base of [resolvePath(cwd, 'package.json'), import.meta.filename]) {
    try {
      return createRequire(base).resolve(spec);
    } catch {
      // not resolvable from there (or an ESM-only package without a "require" condition)
    }
  }
  return spec; // left to import() below, which says why when it fails
}

function factoryOf(module: BackendModule): BackendFactory | undefined {
  if (typeof module.default === 'function') return module.default;
  if (typeof module.createBackend === 'function') return module.createBackend;
  const nested = module.default?.createBackend;
  return typeof nested === 'function' ? nested : undefined;
}

/**
 * Checks that `value` is a Backend; returns it typed.
 * @throws BackendModuleError naming the missing or mistyped members
 */
export function checkBackend(value: unknown, what: string): Backend {
  if (typeof value !== 'object' || value === null) {
    throw new BackendModuleError(`${what} returned ${value === null ? 'null' : typeof value}, not a Backend object`);
  }
  const b = value as Record<string, unknown>;
  const missing = REQUIRED_BACKEND_METHODS.filter((m) => typeof b[m] !== 'function');
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing methods ${missing.join(', ')}`);
  if (typeof b['name'] !== 'string' || b['name'] === '') problems.push(`name must be a non-empty string, got ${JSON.stringify(b['name'])}`);
  if (typeof b['deviceProfile'] !== 'string') problems.push(`deviceProfile must be a string ("" for real compute), got ${JSON.stringify(b['deviceProfile'])}`);
  for (const optional of ['linkModel', 'optimizerState']) {
    if (b[optional] !== undefined && typeof b[optional] !== 'function') problems.push(`${optional}, when present, must be a method`);
  }
  if (problems.length > 0) throw new BackendModuleError(`${what} returned an object that is not a Backend: ${problems.join('; ')}`);
  return value as Backend;
}

/**
 * Imports the backend module `spec` and makes its backend.
 * @param builtin makes the built-in backends handed to the factory
 * @throws BackendModuleError when the module cannot be imported, exports no factory, or its
 *   factory throws or returns something that is not a Backend
 */
export async function loadBackendModule(spec: string, builtin: (name: 'cpu' | 'sim') => Backend, cwd = process.cwd()): Promise<Backend> {
  const resolved = resolveBackendModule(spec, cwd);
  const what = `backend module "${spec}"${resolved !== spec ? ` (${resolved})` : ''}`;
  let module: BackendModule;
  try {
    module = (await import(isAbsolute(resolved) ? pathToFileURL(resolved).href : resolved)) as BackendModule;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const notFound = e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND';
    throw new BackendModuleError(
      `${what} could not be imported: ${notFound ? 'not found' : `${e?.name ?? 'Error'}: ${e?.message ?? String(error)}`}` +
        (notFound && !isPathSpec(spec) ? '; a file path must start with ./ or /, a package must be installed' : ''),
    );
  }
  const factory = factoryOf(module);
  if (!factory) {
    const names = Object.keys(module);
    const exported = names.length === 0 ? 'nothing' : names.slice(0, 8).join(', ') + (names.length > 8 ? `, ... (${names.length} names)` : '');
    throw new BackendModuleError(`${what} exports no backend factory (a default export or a named createBackend function); it exports ${exported}`);
  }
  let backend: unknown;
  try {
    backend = await factory({ spec, resolved, builtin });
  } catch (error) {
    throw new BackendModuleError(`${what}: its factory threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
  return checkBackend(backend, `${what}'s factory`);
}
