/**
 * Worker-thread side of the `cpu` backend: hosts a ShardCompute and answers method calls from
 * the main thread, so real math never blocks the event loop that serves the data plane.
 */
import { parentPort } from 'node:worker_threads';
import { ShardCompute } from '@moe/model';
import type { ThreadRequest, ThreadResponse } from './thread-protocol';

const port = parentPort;
if (!port) throw new Error('cpu-thread.ts must run inside a worker thread');
const compute = new ShardCompute();

port.on('message', (request: ThreadRequest) => {
  let response: ThreadResponse;
  const transfer: ArrayBuffer[] = [];
  try {
    const method = compute[request.method] as (...args: unknown[]) => unknown;
    const result = method.apply(compute, request.args);
    // Fresh Float32Arrays made for the main thread are moved, not copied.
    const collect = (v: unknown) => {
      if (v instanceof Float32Array && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer) {
        if (!transfer.includes(v.buffer)) transfer.push(v.buffer);
      }
    };
    if (request.method !== 'snapshot' && request.method !== 'optimizerState') {
      if (Array.isArray(result)) result.forEach(collect);
      else if (result && typeof result === 'object' && 'form' in result && 'rows' in result) collect(result.rows); // RoutedRows
      else collect(result);
    }
    response = { id: request.id, ok: true, result };
  } catch (error) {
    response = {
      id: request.id,
      ok: false,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    };
  }
  port.postMessage(response, transfer);
});
