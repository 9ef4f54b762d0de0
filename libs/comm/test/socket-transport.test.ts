/**
 * The socket data plane: the shared all-to-all spec over Unix sockets, TCP, a mixed world (two
 * workers that speak only gRPC Exchange) and mutual TLS; frames spread over many socket reads;
 * a sender that dies mid-frame; a wrong token; and `socket` refusing a gRPC-only peer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRows, InboundLink, localHostId, PeerMailbox, PeerUnreachableError, type FrameKey, type TlsFiles, type Transport } from '../src/index';
import { encodeFrameHead, encodeHello, encodeRecord, HEADER_BYTES, RecordKind, type FrameHeader } from '../src/socket/records';
import { allToAllSpec } from './support/alltoall-spec';
import { readySocketTransports, socketTransports, startSocketWorld, stopSocketWorld, type SocketWorld } from './support/socket-world';

const closeAll = async (transports: Transport[]) => void (await Promise.all(transports.map((t) => t.close())));
const key: FrameKey = { step: 1, layer: 0, chunk: 0, phase: 'DISPATCH' };
const rows = (n: number, cols = 4) => ({ payload: encodeRows(Float32Array.from({ length: n * cols }, (_, i) => i), n, cols, 'f32') });

describe('socket data plane worlds', () => {
  const worlds: SocketWorld[] = [];
  const world = (i: number) => worlds[i]!;
  beforeAll(async () => {
    worlds.push(await startSocketWorld([0, 1, 2, 3].map(() => ({ socket: true }))));
    worlds.push(await startSocketWorld([0, 1, 2, 3].map(() => ({ socket: true, unix: false }))));
    worlds.push(await startSocketWorld([0, 1, 2, 3].map((r) => ({ socket: r < 2 }))));
  });
  afterAll(() => Promise.all(worlds.map(stopSocketWorld)));

  allToAllSpec('the socket data plane, Unix sockets', () => readySocketTransports(world(0), { plane: 'socket' }), closeAll);
  allToAllSpec('the socket data plane, TCP', () => readySocketTransports(world(1), { plane: 'socket' }), closeAll);
  allToAllSpec('auto: two socket workers and two that speak only gRPC', () => readySocketTransports(world(2)), closeAll);

  it('uses Unix sockets on one host, TCP without them, and gRPC to workers that speak only Exchange', async () => {
    expect(world(0).sockets[1]!.endpoint()).toMatchObject({ hostId: localHostId(), tls: false });
    expect(world(0).sockets[1]!.endpoint().unixPath).toMatch(/moe-peer-.*\.sock$/);
    expect(world(1).sockets[1]!.endpoint().unixPath).toBe('');
    const mixed = socketTransports(world(2));
    try {
      await mixed[0]!.send(1, key, rows(2));
      expect(mixed[0]!.planesUsed()).toBe('socket');
      await mixed[0]!.send(2, key, rows(2));
      expect(mixed[0]!.planesUsed()).toBe('socket+grpc');
      expect(world(2).mailboxes[1]!.connections().map((c) => c.peer)).toContain('unix socket');
      expect((await mixed[1]!.receive(0, key, 5_000)).payload.rows).toBe(2);
      expect((await mixed[2]!.receive(0, key, 5_000)).payload.rows).toBe(2);
    } finally {
      await closeAll(mixed);
    }
  });

  it('moves a frame spread over many socket reads (16 MiB) intact, and an empty one', async () => {
    const [a, b] = socketTransports(world(1), { plane: 'socket' });
    try {
      const cols = 1024;
      const n = 4096;
      const big = encodeRows(Float32Array.from({ length: n * cols }, (_, i) => (i % 9973) - 17), n, cols, 'f32');
      const ids = Int32Array.from({ length: n }, (_, i) => i % 7);
      await Promise.all([a!.send(1, key, { payload: big, expertIds: ids }), a!.send(1, { ...key, chunk: 1 }, rows(0))]);
      const got = await b!.receive(0, key, 10_000);
      expect(Buffer.from(got.payload.data).equals(Buffer.from(big.data))).toBe(true);
      expect(Array.from(got.expertIds!.subarray(0, 9))).toEqual([0, 1, 2, 3, 4, 5, 6, 0, 1]);
      expect((await b!.receive(0, { ...key, chunk: 1 }, 10_000)).payload.rows).toBe(0);
      expect(a!.bytesSent()).toBe(n * cols * 4);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('--transport socket refuses a peer that speaks only gRPC, naming the flag', async () => {
    const transports = socketTransports(world(2), { plane: 'socket' });
    try {
      const error = await transports[0]!.send(3, key, rows(1)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PeerUnreachableError);
      expect((error as Error).message).toMatch(/rank 3 at .* speaks only gRPC Exchange.*--transport auto/);
    } finally {
      await closeAll(transports);
    }
  });

  it('a sender that dies mid-frame fails the receive waiting for it at once, naming it', async () => {
    const [receiver] = socketTransports(world(1), { plane: 'socket' });
    const runId = (receiver as unknown as { o: { runId: string } }).o.runId;
    // A sender that welcomes the receiver's dial, writes half a frame and dies.
    const sender = net.createServer((socket) => {
      socket.once('data', () => {
        socket.write(encodeRecord(RecordKind.Welcome));
        const header: FrameHeader = { seq: 0, key, dtype: 'F32', rows: 4, cols: 4, blockSize: 0, idBytes: 0, weightBytes: 0, scaleBytes: 0, dataBytes: 64 };
        socket.write(Buffer.concat([encodeFrameHead(header), Buffer.alloc(20)]));
        setTimeout(() => socket.destroy(), 50);
      });
    });
    await new Promise<void>((resolve) => sender.listen(0, '127.0.0.1', resolve));
    const endpoint = { tcpAddress: `127.0.0.1:${(sender.address() as net.AddressInfo).port}`, unixPath: '', hostId: '', tls: false };
    const link = new InboundLink({ runId, rank: 0, source: 2, endpoint, hostId: localHostId(), mailbox: world(1).mailboxes[0]! });
    try {
      const waiting = receiver!.receive(2, key, 30_000);
      await link.open();
      const started = Date.now();
      await expect(waiting).rejects.toBeInstanceOf(PeerUnreachableError);
      await expect(waiting).rejects.toThrow(/rank 2 at .* is unreachable: its stream to rank 0 broke .*middle of a frame/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      sender.close();
      await link.close();
      await receiver!.close();
    }
  });

  it('a refused frame fails only its own send; the frames before and after it arrive', async () => {
    const [a, b] = socketTransports(world(0), { plane: 'socket' });
    try {
      const sends = [a!.send(1, key, rows(1)), a!.send(1, key, rows(2)), a!.send(1, { ...key, chunk: 1 }, rows(3))];
      const settled = await Promise.allSettled(sends);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/rank 1 refused step 1 layer 0 chunk 0 DISPATCH: duplicate/);
      expect((await b!.receive(0, key, 5_000)).payload.rows).toBe(1);
      expect((await b!.receive(0, { ...key, chunk: 1 }, 5_000)).payload.rows).toBe(3);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('a full mailbox holds frames back; one taken first skips the queue, and every send resolves', async () => {
    // Room for two frames of 4 rows x 4 f32 (64 data + 16 id bytes each): the rest wait for room.
    const small = await startSocketWorld([0, 1].map(() => ({ socket: true, capacityBytes: 160 })));
    const [a, b] = socketTransports(small, { plane: 'socket' }); // a window of 8: all 7 are written
    try {
      const keys = Array.from({ length: 7 }, (_, chunk) => ({ ...key, chunk }));
      const frame = (chunk: number) => ({ ...rows(4), expertIds: Int32Array.from({ length: 4 }, () => chunk) });
      const sends = keys.map((k) => a!.send(1, k, frame(k.chunk)));
      // 0 and 1 fill the mailbox; 6, waited for, is settled before 2..5 (its ack must wait for theirs).
      const order = [6, 0, 1, 2, 3, 4, 5];
      const got = [];
      for (const chunk of order) got.push(await b!.receive(0, keys[chunk]!, 10_000));
      await Promise.all(sends);
      expect(got.map((f) => f.expertIds![0])).toEqual(order);
    } finally {
      await closeAll([a!, b!]);
      await stopSocketWorld(small);
    }
  });
});

describe('socket data plane with a cluster token', () => {
  let world: SocketWorld;
  beforeAll(async () => {
    world = await startSocketWorld([0, 1].map(() => ({ socket: true, token: 'right' })));
  });
  afterAll(() => stopSocketWorld(world));

  allToAllSpec('the socket data plane with a token', async () => {
    const w = await startSocketWorld([0, 1, 2, 3].map(() => ({ socket: true, token: 'right' })));
    return (await readySocketTransports(w, { plane: 'socket', token: 'right' })).map((t) => Object.assign(t, { world: w }));
  }, async (transports) => {
    await closeAll(transports);
    await stopSocketWorld((transports[0] as unknown as { world: SocketWorld }).world);
  });

  it('refuses a wrong token in the handshake, and the receives from that peer learn why at once', async () => {
    const mailbox = new PeerMailbox();
    mailbox.open('r', 1, 2);
    const waiting = mailbox.receive(0, key, 30_000);
    const link = new InboundLink({ runId: 'r', rank: 1, source: 0, endpoint: world.sockets[0]!.endpoint(), hostId: localHostId(), mailbox, token: 'wrong' });
    const error = await link.open().catch((e: unknown) => e);
    await link.close();
    expect(error).toBeInstanceOf(PeerUnreachableError);
    expect((error as Error).message).toMatch(/refused the connection: wrong cluster token/);
    await expect(waiting).rejects.toThrow(/wrong cluster token/);
    expect(mailbox.connections()).toEqual([]);
  });

  it('refuses a frame sent before the hello', async () => {
    const [host, port] = world.sockets[0]!.endpoint().tcpAddress.split(':');
    const socket = net.connect(Number(port), host);
    const header: FrameHeader = { seq: 0, key, dtype: 'F32', rows: 1, cols: 4, blockSize: 0, idBytes: 0, weightBytes: 0, scaleBytes: 0, dataBytes: 16 };
    socket.write(Buffer.concat([encodeFrameHead(header), Buffer.alloc(16)]));
    const reply = await new Promise<string>((resolve) => {
      let got = Buffer.alloc(0);
      socket.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
      socket.on('close', () => resolve(got.toString('utf8', HEADER_BYTES)));
    });
    expect(reply).toMatch(/at most 0 may follow here/);
  });

  it('a transport with the wrong token cannot even ask which planes the peer speaks', async () => {
    const [t0] = socketTransports(world, { token: 'wrong' });
    try {
      await expect(t0!.send(1, key, rows(1))).rejects.toThrow(/UNAUTHENTICATED.*wrong x-moe-token/);
    } finally {
      await t0!.close();
    }
  });
});

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasOpenssl)('socket data plane over mutual TLS', () => {
  let dir: string;
  let files: TlsFiles;
  let world: SocketWorld;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moe-socket-tls-'));
    const p = (name: string) => join(dir, name);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '1', '-subj', '/CN=moe-test-ca');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('node.key'), '-out', p('node.csr'), '-subj', '/CN=localhost');
    writeFileSync(p('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
    ssl('x509', '-req', '-in', p('node.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('node.pem'), '-days', '1', '-extfile', p('ext.cnf'));
    files = { cert: readFileSync(p('node.pem')), key: readFileSync(p('node.key')), ca: readFileSync(p('ca.pem')) };
    world = await startSocketWorld([0, 1, 2, 3].map(() => ({ socket: true })), files);
  });
  afterAll(async () => {
    await stopSocketWorld(world);
    rmSync(dir, { recursive: true, force: true });
  });

  allToAllSpec('the socket data plane over TLS', () => readySocketTransports(world, { plane: 'socket', tls: files }), closeAll);

  it('offers TLS over TCP only, and a sender without TLS files is refused with what to set', async () => {
    expect(world.sockets[0]!.endpoint()).toMatchObject({ tls: true, unixPath: '' });
    const [t0] = socketTransports(world, { plane: 'socket' });
    try {
      await expect(t0!.send(1, key, rows(1))).rejects.toThrow(/speaks TLS but this worker has no TLS files \(MOE_TLS_CERT/);
    } finally {
      await t0!.close();
    }
  });

  it('a plaintext client is never welcomed', async () => {
    const [host, port] = world.sockets[1]!.endpoint().tcpAddress.split(':');
    const socket = net.connect(Number(port), host);
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    let got = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
    socket.write(encodeHello({ runId: 'x', rank: 0, token: '', generation: 1 }));
    await new Promise((resolve) => socket.on('close', resolve));
    expect(got.length >= 2 && got[0] === RecordKind.Welcome && got[1] === 2).toBe(false);
  });
});
