import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, errorFields, lineLog, numbersIn, parseLogLevel, readableLine, withFields } from '../src/index';

/** A JSON logger whose lines are collected, parsed. */
function collecting(level: 'info' | 'debug' = 'info') {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  let buffer = '';
  stream.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      lines.push(JSON.parse(buffer.slice(0, i)));
      buffer = buffer.slice(i + 1);
    }
  });
  return { logger: createLogger({ name: 'test', level, json: true, stream }), lines };
}
const settle = () => new Promise((r) => setImmediate(r));

describe('structured log lines', () => {
  it('carry the message, the process name and the fields that follow a run', async () => {
    const { logger, lines } = collecting();
    withFields(lineLog(logger), { runId: 'job-7-a1', jobId: '7' })('worker w-0: run job-7-a1, rank 0 of 2', { rank: 0, workerId: 'w-0' });
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, name: 'test', msg: 'worker w-0: run job-7-a1, rank 0 of 2', runId: 'job-7-a1', jobId: '7', rank: 0, workerId: 'w-0' });
  });

  it('log an error at the level asked, with its class and the numbers its message names', async () => {
    const { logger, lines } = collecting();
    class RendezvousTimeoutError extends Error {
      override name = 'RendezvousTimeoutError';
    }
    lineLog(logger)('job 3 failed', { level: 'error', err: new RendezvousTimeoutError('waited 800 ms for 6 workers; 4 registered') });
    await settle();
    expect(lines[0]).toMatchObject({ level: 50, errClass: 'RendezvousTimeoutError', numbers: { ms: 800, workers: 6, registered: 4 } });
    expect(lines[0]!.err).toMatchObject({ type: 'RendezvousTimeoutError', message: 'waited 800 ms for 6 workers; 4 registered' });
  });

  it('drop lines below the level', async () => {
    const { logger, lines } = collecting('info');
    lineLog(logger)('per-op detail', { level: 'debug', op: 'dispatch' });
    lineLog(logger)('kept');
    await settle();
    expect(lines.map((l) => l.msg)).toEqual(['kept']);
  });
});

describe('numbersIn', () => {
  it('names each figure by the word next to it', () => {
    expect(numbersIn('top_k=9 exceeds experts=8 (config.model.topK)')).toEqual({ top_k: 9, experts: 8 });
    expect(numbersIn('RunStep of step 3 on rank 1 failed: no reply within 500 ms')).toEqual({ step: 3, rank: 1, ms: 500 });
    expect(numbersIn('no figures here')).toEqual({});
  });

  it('leaves errorFields without numbers when the message has none', () => {
    expect(errorFields(new TypeError('bad')).numbers).toBeUndefined();
    expect(errorFields(new TypeError('bad')).errClass).toBe('TypeError');
  });
});

describe('levels and readable lines', () => {
  it('refuses an unknown level, naming the source and the levels', () => {
    expect(() => parseLogLevel('loud', '--log-level')).toThrow(/--log-level="loud" is not a log level; use one of fatal, error, warn, info, debug/);
    expect(parseLogLevel(' DEBUG ')).toBe('debug');
  });

  it('turns a pino JSON line into level and message, and leaves other lines alone', () => {
    expect(readableLine('{"level":50,"time":1,"msg":"worker w-1: refused LoadShard","errClass":"InvalidShardError"}')).toBe('ERROR worker w-1: refused LoadShard (InvalidShardError)');
    expect(readableLine('fake worker w-1: cannot start')).toBe('fake worker w-1: cannot start');
  });

  it('writes readable single lines when not JSON', async () => {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString()));
    createLogger({ name: 'serve', level: 'info', json: false, stream }).info({ jobId: '4' }, 'serve: job 4: started');
    await settle();
    expect(text).toMatch(/INFO.*\(serve\).*serve: job 4: started.*"jobId":"4"/);
    expect(text.trim().split('\n')).toHaveLength(1);
  });
});
