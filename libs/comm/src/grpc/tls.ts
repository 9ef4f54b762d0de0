/**
 * TLS for every gRPC server and channel of a cluster, from the environment:
 * `MOE_TLS_CERT` and `MOE_TLS_KEY` (this process's certificate and private key, PEM files) and
 * `MOE_TLS_CA` (the CA bundle that signed the peers' certificates). With all three set, servers
 * serve TLS and require a client certificate signed by the CA (mutual TLS), and channels speak TLS
 * and present this process's certificate. With none set, plaintext (insecure) credentials: the
 * default, for a closed network on 127.0.0.1. Any other combination, or an unreadable file, is a
 * `TlsConfigError` naming the variable and the path.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

export const TLS_CERT_ENV = 'MOE_TLS_CERT';
export const TLS_KEY_ENV = 'MOE_TLS_KEY';
export const TLS_CA_ENV = 'MOE_TLS_CA';

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

const VARS = [TLS_CERT_ENV, TLS_KEY_ENV, TLS_CA_ENV] as const;

/** The TLS files of `env` (default: this process's environment), read; undefined when TLS is off (no variable set). */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): TlsFiles | undefined {
  const set = VARS.filter((name) => env[name]);
  if (set.length === 0) return undefined;
  if (set.length < VARS.length) {
    const missing = VARS.filter((name) => !env[name]);
    throw new TlsConfigError(`TLS: ${set.join(', ')} set but ${missing.join(', ')} not: set all of ${VARS.join(', ')} (PEM files) for TLS, or none for plaintext`);
  }
  const read = (name: (typeof VARS)[number]): Buffer => {
    const path = env[name]!;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new TlsConfigError(`TLS: cannot read ${name}=${path}: ${(error as Error).message}`);
    }
  };
  return { cert: read(TLS_CERT_ENV), key: read(TLS_KEY_ENV), ca: read(TLS_CA_ENV) };
}

/** True when the environment turns TLS on (all of MOE_TLS_CERT, MOE_TLS_KEY, MOE_TLS_CA set). */
export function tlsEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return tlsFromEnv(env) !== undefined;
}

/** Server credentials: mutual TLS (client certificates checked against the CA) when the environment sets TLS, else insecure. */
export function serverCredentials(env: NodeJS.ProcessEnv = process.env): grpc.ServerCredentials {
  const tls = tlsFromEnv(env);
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** Channel credentials: TLS presenting this process's certificate, trusting the CA, when the environment sets TLS, else insecure. */
export function channelCredentials(env: NodeJS.ProcessEnv = process.env): grpc.ChannelCredentials {
  const tls = tlsFromEnv(env);
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key, tls.cert);
}
