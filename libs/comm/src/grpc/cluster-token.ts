/**
 * The cluster token: a shared secret every process of a cluster sends as gRPC metadata
 * `x-moe-token` on every call (Register, Heartbeat, every Worker RPC, every Peer stream), and
 * every server requires when it has one. A caller without it, or with another, is refused with
 * UNAUTHENTICATED, on the call's metadata before its message is read (see server-guard.ts).
 * Set by `MOE_CLUSTER_TOKEN` or `--token`; unset means no check (a closed network).
 * It authenticates callers, it does not encrypt: use it on a network you trust, or behind TLS.
 */
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS } from '../proto/load';

export const TOKEN_METADATA_KEY = 'x-moe-token';
export const TOKEN_ENV = 'MOE_CLUSTER_TOKEN';

/** The token of this process's environment (`MOE_CLUSTER_TOKEN`), or undefined when unset or empty. */
export function envToken(): string | undefined {
  return process.env[TOKEN_ENV] || undefined;
}

/** A client interceptor that adds `x-moe-token: token` to every call's metadata. */
export function tokenInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(TOKEN_METADATA_KEY, token);
        next(metadata, listener);
      },
    });
}

/** Client options: GRPC_OPTIONS (plus `extra`), and the token interceptor when there is a token. */
export function clientOptions(token: string | undefined, extra: grpc.ClientOptions = {}): grpc.ClientOptions {
  return token ? { ...GRPC_OPTIONS, ...extra, interceptors: [tokenInterceptor(token)] } : { ...GRPC_OPTIONS, ...extra };
}

/** Why `metadata` does not carry `token` (undefined: it does, or no token is required). */
export function tokenProblem(metadata: grpc.Metadata, token: string | undefined): string | undefined {
  if (!token) return undefined;
  const sent = metadata.get(TOKEN_METADATA_KEY)[0];
  if (sent === undefined) return `missing ${TOKEN_METADATA_KEY} metadata: this cluster requires its token (MOE_CLUSTER_TOKEN or --token)`;
  const a = Buffer.from(String(sent));
  const b = Buffer.from(token);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return `wrong ${TOKEN_METADATA_KEY}: not this cluster's token`;
  return undefined;
}
