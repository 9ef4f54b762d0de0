/**
 * TLS from the environment (MOE_TLS_CERT, MOE_TLS_KEY, MOE_TLS_CA): a CA and a certificate for
 * localhost/127.0.0.1 are made with openssl at test time; with them set, a 2-worker training run
 * works over mutual TLS (scheduler service, worker servers, scheduler<->worker and peer channels),
 * and a plaintext client to a TLS worker gets nowhere.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { channelCredentials, GRPC_OPTIONS, loadMoeProto, serverCredentials, TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV, TlsConfigError } from '@moe/comm';
import { parseModelConfig, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/control/local-cluster';
import { runTraining } from '../src/run/train-run';

const model = parseModelConfig({ ...TINY_MODEL, hiddenSize: 8, expertFfnSize: 8, routedExperts: 4, layers: 1 });
const train = { ...TINY_TRAIN, batchSequences: 4, seqLen: 8, steps: 2 };
const MS = 10_000;

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasOpenssl) console.warn('tls.test: skipped: openssl is not installed (needed to make the test CA and certificate)');

function makeCerts(dir: string): { cert: string; key: string; ca: string } {
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '1', '-subj', '/CN=moe-test-ca');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('node.key'), '-out', p('node.csr'), '-subj', '/CN=localhost');
  writeFileSync(p('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  ssl('x509', '-req', '-in', p('node.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('node.pem'), '-days', '1', '-extfile', p('ext.cnf'));
  return { cert: p('node.pem'), key: p('node.key'), ca: p('ca.pem') };
}

describe.skipIf(!hasOpenssl)('TLS from the environment', () => {
  let dir: string;
  let files: { cert: string; key: string; ca: string };
  const saved = { ...process.env };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moe-tls-'));
    files = makeCerts(dir);
    delete process.env.MOE_CLUSTER_TOKEN;
  });
  afterAll(() => {
    for (const name of [TLS_CERT_ENV, TLS_KEY_ENV, TLS_CA_ENV]) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const tlsOn = () => {
    process.env[TLS_CERT_ENV] = files.cert;
    process.env[TLS_KEY_ENV] = files.key;
    process.env[TLS_CA_ENV] = files.ca;
  };

  it('partial or unreadable settings are a named error; none is plaintext', () => {
    expect(() => serverCredentials({})).not.toThrow();
    expect(() => channelCredentials({ [TLS_CERT_ENV]: files.cert })).toThrow(TlsConfigError);
    expect(() => channelCredentials({ [TLS_CERT_ENV]: files.cert })).toThrow(/MOE_TLS_KEY, MOE_TLS_CA not/);
    const missing = join(dir, 'nope.pem');
    expect(() => serverCredentials({ [TLS_CERT_ENV]: files.cert, [TLS_KEY_ENV]: files.key, [TLS_CA_ENV]: missing })).toThrow(
      new RegExp(`cannot read MOE_TLS_CA=${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`),
    );
  });

  it('a 2-worker training run works over mutual TLS; a plaintext client to a TLS worker fails', async () => {
    tlsOn();
    // Workers a LocalCluster starts inherit this environment, so they serve and dial with TLS too.
    const cluster = await LocalCluster.start({ workers: 2, rendezvousTimeoutMs: 20_000 });
    try {
      const result = await runTraining({ model, train, workers: 2, cluster });
      expect(result.losses).toHaveLength(2);
      result.losses.forEach((l) => expect(Number.isFinite(l)).toBe(true));

      const proto = loadMoeProto();
      const plain = new proto.moe.v1.Worker(cluster.workers[0]!.address, grpc.credentials.createInsecure(), GRPC_OPTIONS);
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        plain.Health({}, { deadline: new Date(Date.now() + 3_000) }, (e) => resolve(e)),
      );
      plain.close();
      expect(error).not.toBeNull();
      expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(error!.code);

      // TLS without a client certificate is refused too (mutual TLS).
      const noClientCert = new proto.moe.v1.Worker(cluster.workers[0]!.address, grpc.credentials.createSsl(readFileSync(files.ca)), GRPC_OPTIONS);
      const error2 = await new Promise<grpc.ServiceError | null>((resolve) =>
        noClientCert.Health({}, { deadline: new Date(Date.now() + 3_000) }, (e) => resolve(e)),
      );
      noClientCert.close();
      expect(error2).not.toBeNull();
    } finally {
      await cluster.stop();
    }
  }, 30_000);
});
