/**
 * Backend modules: `--backend <path or package>` imports a module whose factory makes the
 * Backend; built-in names still make the built-in backends; every way a module can be wrong is
 * refused with a BackendModuleError that names the module and what is wrong.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInMemoryTransports } from '@moe/comm';
import { denseParams, expertParams, initParams, MarkovChain, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference, type Tensor } from '@moe/model';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, Shard } from '../src/backend';
import { CpuBackend } from '../src/backends/cpu-backend';
import { createBackend, loadBackend } from '../src/backends/create-backend';
import { BackendModuleError, isPathSpec, loadBackendModule, resolveBackendModule } from '../src/backends/load-backend-module';
import { SimBackend } from '../src/backends/sim/sim-backend';
import { buildSchedule } from '@moe/schedule';
import { StepExecutor } from '../src/schedule/executor';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = './examples/delayed-cpu-backend/delayed-cpu-backend.ts';
const builtin = (name: 'cpu' | 'sim') => createBackend(name);
const opened: Backend[] = [];
afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
});

const dir = mkdtempSync(join(tmpdir(), 'moe-backend-module-'));
function moduleFile(name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

describe('loadBackend', () => {
  it('makes the built-in backends from their names', async () => {
    const cpu = await loadBackend('cpu');
    opened.push(cpu);
    expect(cpu).toBeInstanceOf(CpuBackend);
    expect(await loadBackend('sim')).toBeInstanceOf(SimBackend);
  });

  it('takes a name starting with . or / as a file, anything else that is not built in as a package', () => {
    expect(isPathSpec('./my-backend.js')).toBe(true);
    expect(isPathSpec('/opt/backends/gpu.js')).toBe(true);
    expect(isPathSpec('my-backend')).toBe(false);
    expect(resolveBackendModule('./x/y.js', '/srv/app')).toBe('/srv/app/x/y.js');
    expect(resolveBackendModule('zod', REPO_ROOT)).toMatch(/node_modules\/zod\//);
  });
});

describe('the example backend module (cpu + a delay per expert)', () => {
  it('loads, names itself, and trains one step exactly like the reference trainer', async () => {
    const backend = (await loadBackendModule(EXAMPLE, builtin, REPO_ROOT)) as Backend & { delayedMs: number };
    opened.push(backend);
    expect(backend.name).toBe('delayed-cpu');
    expect(backend.deviceProfile).toBe('');

    // a world of one rank holding every expert: the step is the whole global batch
    const model = parseModelConfig({ ...TINY_MODEL, layers: 2 });
    const init = initParams(model);
    const copy = (t: Tensor): Tensor => ({ shape: [...t.shape], data: new Float32Array(t.data) });
    const shard: Shard = {
      runId: 'module-test',
      rank: 0,
      worldSize: 1,
      peers: [],
      model,
      optimizer: TINY_TRAIN.optimizer,
      expertOwner: new Array(model.routedExperts).fill(0),
      dense: new Map(denseParams(init).map((p) => [p.name, copy(p.tensor)])),
      experts: init.experts.map((layer) => new Map(layer.map((e, id) => [id, new Map(expertParams(e).map((p) => [p.name, copy(p.tensor)]))]))),
      seqLen: TINY_TRAIN.seqLen,
      backendOptions: { delayMsPerExpert: 1 },
    };
    await backend.load(shard);
    const [transport] = createInMemoryTransports(1);
    const executor = new StepExecutor(backend, transport!, shard.expertOwner);
    const batch = new MarkovChain(model.vocabSize, TINY_TRAIN.dataSeed).batch(0, TINY_TRAIN.batchSequences, TINY_TRAIN.seqLen);
    const outcome = await executor.run(
      buildSchedule({ kind: 'naive', layers: model.layers, chunks: 1 }),
      { step: 0, inputs: batch.inputs, targets: batch.targets, globalTokens: batch.inputs.length, globalSequences: batch.sequences },
      { dispatchCodec: 'f32', combineCodec: 'f32', timeoutMs: 10_000 },
    );
    const reference = trainReference(model, { ...TINY_TRAIN, steps: 1 });
    expect(Math.abs(outcome.lossSum - reference.losses[0]!) / reference.losses[0]!).toBeLessThanOrEqual(1e-6);
    // every routed expert received rows, forward and backward: a delay for each
    expect(backend.delayedMs).toBeGreaterThanOrEqual(2 * model.layers * model.routedExperts);
  });
});

describe('a backend module that cannot be used is refused, naming what is wrong', () => {
  const refused = (spec: string) => loadBackendModule(spec, builtin, dir);

  it('a file that does not exist', async () => {
    await expect(refused('./nowhere.mjs')).rejects.toThrow(BackendModuleError);
    await expect(refused('./nowhere.mjs')).rejects.toThrow(/backend module "\.\/nowhere\.mjs" \(.*nowhere\.mjs\) could not be imported: not found/);
  });

  it('a package that is not installed', async () => {
    await expect(refused('no-such-backend-package')).rejects.toThrow(/could not be imported: not found; a file path must start with \.\/ or \//);
  });

  it('a module without a factory lists what it exports', async () => {
    moduleFile('no-factory.mjs', 'export const answer = 42; export function helper() {}\n');
    await expect(refused('./no-factory.mjs')).rejects.toThrow(/exports no backend factory .* it exports answer, helper/);
  });

  it('a factory that returns something that is not a Backend names the missing methods', async () => {
    moduleFile('half.mjs', "export default () => ({ name: 'half', deviceProfile: '', load() {}, hiddenSize() {}, topK() {} });\n");
    const error = (await refused('./half.mjs').catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(BackendModuleError);
    expect(error.message).toMatch(/is not a Backend: missing methods beginStep, route, sharedExperts, experts, .*close/);
    moduleFile('null.mjs', 'export function createBackend() { return null; }\n');
    await expect(refused('./null.mjs')).rejects.toThrow(/returned null, not a Backend object/);
  });

  it('a factory that throws', async () => {
    moduleFile('throws.mjs', "export default () => { throw new RangeError('no GPU on this host'); };\n");
    await expect(refused('./throws.mjs')).rejects.toThrow(/its factory threw RangeError: no GPU on this host/);
  });

  it('a named createBackend export works as well as a default one, and may wrap a built-in', async () => {
    moduleFile('named.mjs', "export async function createBackend({ builtin, spec }) { const b = builtin('sim'); b.spec = spec; return b; }\n");
    const backend = await refused('./named.mjs');
    expect(backend).toBeInstanceOf(SimBackend);
    expect((backend as unknown as { spec: string }).spec).toBe('./named.mjs');
  });
});
