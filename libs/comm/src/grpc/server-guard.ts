/**
 * Authentication before resources, for every gRPC server of a cluster (Scheduler, Worker, Peer).
 *
 * grpc-js keeps a call's HTTP/2 stream paused until its handler asks for the message
 * (`startRead`), and a server interceptor sees the call's metadata before that. So the cluster
 * token is checked here, on the metadata: a caller without it is answered UNAUTHENTICATED and
 * its message is never read; at most one HTTP/2 flow-control window (64 KiB, Node's default for
 * a server) of it is ever buffered, then discarded. (TLS, when on, is checked earlier still, in
 * the handshake.)
 *
 * Authenticated callers are bounded too:
 * - per connection, at most `maxStreamsPerConnection` concurrent calls (HTTP/2
 *   SETTINGS_MAX_CONCURRENT_STREAMS);
 * - per process, at most `maxConcurrentReceives` unary messages are received at once; further
 *   calls wait, unread, for a slot (their own deadline still applies). With messages of at most
 *   `grpc.max_receive_message_length` (1 GiB), that bounds what requests can make a process hold.
 * Streaming calls (Peer.Exchange) are bounded by their own acknowledgement window instead.
 */
import * as http2 from 'node:http2';
import type { Http2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { tokenProblem } from './cluster-token';

export interface ServerGuardOptions {
  /** Cluster token required on every call; undefined or "": none (every caller is served). */
  token?: string;
  /** Where refusals are logged (service, method and the caller's address). */
  log?: (line: string) => void;
  /** Concurrent calls (HTTP/2 streams) per connection. Default 64. */
  maxStreamsPerConnection?: number;
  /**
   * Unary requests received at once, per process. Default 2. A server whose requests are all
   * small (it sets a small `grpc.max_receive_message_length`) passes Infinity: then a caller
   * that stalls its calls holds up no one.
   */
  maxConcurrentReceives?: number;
}

export const SERVER_GUARD_DEFAULTS = { maxStreamsPerConnection: 64, maxConcurrentReceives: 2 } as const;

/** A counting semaphore of receive slots; waiters are served in order. */
class ReceiveSlots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

  /** Calls `granted` once a slot is free (now or later); returns a function that cancels the wait or frees the slot. */
  acquire(granted: () => void): () => void {
    let state: 'waiting' | 'held' | 'done' = 'waiting';
    const grant = () => {
      if (state !== 'waiting') return;
      state = 'held';
      this.used++;
      granted();
    };
    if (this.used < this.size) grant();
    else this.waiting.push(grant);
    return () => {
      if (state === 'held') {
        this.used--;
        this.next();
      } else if (state === 'waiting') {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
      }
      state = 'done';
    };
  }

  private next(): void {
    while (this.used < this.size && this.waiting.length) this.waiting.shift()!();
  }
}

/**
 * After a refusal's trailers are out, resets the HTTP/2 stream with NO_ERROR: what RFC 9113
 * (8.1) gives a server that answered before the request was complete, so the client stops
 * sending its message instead of uploading the rest for the server to discard. grpc-js does not
 * expose the stream; when its call object's layout changes, this does nothing (the rest of the
 * message is then still discarded unread, only later).
 */
function stopUpload(call: unknown): void {
  const stream = (call as { stream?: Http2Stream }).stream;
  if (!stream || typeof stream.close !== 'function') return;
  setImmediate(() => {
    if (!stream.destroyed && !stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}

/** The interceptor: token on the metadata first, then a receive slot for unary requests. */
export function serverGuard(options: ServerGuardOptions): grpc.ServerInterceptor {
  const token = options.token || undefined;
  const slots = new ReceiveSlots(options.maxConcurrentReceives ?? SERVER_GUARD_DEFAULTS.maxConcurrentReceives);
  return (method, call) => {
    let release = () => {};
    const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            const problem = tokenProblem(metadata, token);
            if (problem) {
              // Refused before a byte of the message is read: its stream stays paused, then is discarded.
              const [service, name] = method.path.replace(/^\/(moe\.v1\.)?/, '').split('/');
              options.log?.(`${service}: refused ${name} from ${call.getPeer()}: ${problem}`);
              intercepting.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: `${service}.${name}: ${problem}`, metadata: new grpc.Metadata() });
              stopUpload(call);
              return;
            }
            if (method.requestStream || !Number.isFinite(slots.size)) {
              nextMetadata(metadata);
              return;
            }
            release = slots.acquire(() => nextMetadata(metadata));
          },
          onReceiveMessage(message, nextMessage) {
            release(); // the message is in: its bytes are the handler's now
            nextMessage(message);
          },
          onCancel() {
            release();
          },
        });
      },
      sendStatus(status, next) {
        release();
        next(status);
      },
    });
    return intercepting;
  };
}

/** `base` server options plus the guard: the token check, the per-connection and per-process limits. */
export function guardedServerOptions(base: grpc.ServerOptions, options: ServerGuardOptions): grpc.ServerOptions {
  return {
    ...base,
    'grpc.max_concurrent_streams': options.maxStreamsPerConnection ?? SERVER_GUARD_DEFAULTS.maxStreamsPerConnection,
    interceptors: [serverGuard(options)],
  };
}
