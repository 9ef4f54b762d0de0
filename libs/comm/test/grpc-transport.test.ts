import { Buffer } from 'node:buffer';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeRows,
  dispatch,
  dispatchLayout,
  encodeRows,
  GRPC_OPTIONS,
  GrpcTransport,
  loadMoeProto,
  PeerMailbox,
  PeerRefusedError,
  PeerUnreachableError,
  type FrameKey,
  type PeerAckOut,
  type PeerMessage,
  type Transport,
} from '../src/index';
import { allToAllSpec } from './support/alltoall-spec';
import { grpcTransports, startPeerServers, stopPeerServers, type PeerServers } from './support/grpc-world';

let peers: PeerServers;
beforeAll(async () => {
  peers = await startPeerServers(4);
});
afterAll(() => stopPeerServers(peers));

const closeAll = async (transports: Transport[]) => void (await Promise.all(transports.map((t) => t.close())));

allToAllSpec('gRPC, one connection per peer', async () => grpcTransports(peers), closeAll);
allToAllSpec(
  'gRPC, three connections per peer and 100-byte parts',
  async () => grpcTransports(peers, { connectionsPerPeer: 3, maxFrameBytes: 100, ackWindow: 2 }),
  closeAll,
);

const key: FrameKey = { step: 1, layer: 0, chunk: 0, phase: 'DISPATCH' };
const rows = (n: number, cols = 4) => ({ payload: encodeRows(Float32Array.from({ length: n * cols }, (_, i) => i), n, cols, 'f32') });

describe('gRPC transport', () => {
  it('moves a dispatch of more than 64 MiB between two ranks', async () => {
    const [a, b] = grpcTransports(peers).slice(0, 2);
    const world = [a!, b!];
    const cols = 1024;
    const tokens = 16 * 1024 + 1; // 64 MiB + 4 KiB of f32 rows
    const source = new Float32Array(tokens * cols);
    for (let t = 0; t < tokens; t++) source[t * cols] = t;
    const owner = [1]; // the only expert lives on rank 1
    const sending = Int32Array.from({ length: tokens }, () => 0);
    try {
      // a 2-rank world inside the 4 servers: ranks 2 and 3 take no part, so use a 2-entry peer list
      const t0 = new GrpcTransport({ runId: 'big', rank: 0, peers: peers.addresses.slice(0, 2), mailbox: peers.mailboxes[0]! });
      const t1 = new GrpcTransport({ runId: 'big', rank: 1, peers: peers.addresses.slice(0, 2), mailbox: peers.mailboxes[1]! });
      const [r0, r1] = await Promise.all([
        dispatch(t0, key, dispatchLayout(sending, owner, 2), source, cols, { rowOfSlot: (s) => s, expertIds: sending, codec: 'f32', timeoutMs: 30_000 }),
        dispatch(t1, key, dispatchLayout(new Int32Array(0), owner, 2), new Float32Array(0), cols, { rowOfSlot: (s) => s, codec: 'f32', timeoutMs: 30_000 }),
      ]);
      expect(r0.received.map((r) => r.count)).toEqual([0, 0]);
      const got = r1.received[0]!;
      expect(got.count).toBe(tokens);
      expect(got.rows.length).toBe(tokens * cols);
      for (const t of [0, 1, 4097, tokens - 1]) expect(got.rows[t * cols]).toBe(t);
      expect(t0.bytesSent()).toBe(tokens * cols * 4);
      await Promise.all([t0.close(), t1.close()]);
    } finally {
      await closeAll(world);
    }
  });

  it('refuses a duplicate frame and frames of another run, naming why', async () => {
    const [a, b, c, d] = grpcTransports(peers);
    try {
      await a!.send(1, key, rows(2));
      await expect(a!.send(1, key, rows(2))).rejects.toThrow(/rank 1 refused step 1 layer 0 chunk 0 DISPATCH: duplicate/);
      const stranger = new GrpcTransport({ runId: 'someone-else', rank: 0, peers: peers.addresses, mailbox: new PeerMailbox() });
      const refused = await stranger.send(1, key, rows(1)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(PeerRefusedError);
      expect((refused as Error).message).toMatch(/run someone-else is not this worker's run run-\d+/);
      await stranger.close();
      // b still has the first frame
      const frame = await b!.receive(0, key, 1_000);
      expect(frame.payload.rows).toBe(2);
    } finally {
      await closeAll([a!, b!, c!, d!]);
    }
  });

  it('rejects with PeerUnreachableError when nobody listens at the address', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const t = new GrpcTransport({ runId: 'lonely', rank: 0, peers: ['', `127.0.0.1:${port}`], mailbox: new PeerMailbox() });
    const error = await t.send(1, key, rows(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PeerUnreachableError);
    expect((error as Error).message).toMatch(new RegExp(`rank 1 at 127.0.0.1:${port} is unreachable: UNAVAILABLE`));
    await t.close();
  });

  it('opens separate HTTP/2 connections per peer and spreads a frame\'s parts over them', async () => {
    const world = grpcTransports(peers, { connectionsPerPeer: 3, maxFrameBytes: 1024 });
    try {
      await world[0]!.send(1, key, rows(1000)); // 16000 bytes: 16 parts over 3 connections
      const fromZero = peers.mailboxes[1]!.connections().filter((c) => c.source === 0 && c.runId === world[0]!.runId);
      expect(fromZero.map((c) => c.connection).sort()).toEqual([0, 1, 2]);
      expect(new Set(fromZero.map((c) => c.peer)).size).toBe(3); // three client ports: three sockets
      const frame = await world[1]!.receive(0, key, 1_000);
      expect(decodeRows(frame.payload)).toEqual(Float32Array.from({ length: 4000 }, (_, i) => i));
    } finally {
      await closeAll(world);
    }
  });

  it('passes a rank\'s frame to itself through its own mailbox, without sending it', async () => {
    const world = grpcTransports(peers);
    try {
      await world[2]!.send(2, key, rows(3));
      expect((await world[2]!.receive(2, key, 1_000)).payload.rows).toBe(3);
      expect(world[2]!.bytesSent()).toBe(0);
    } finally {
      await closeAll(world);
    }
  });

  it('holds a sender back while the receiver\'s mailbox is full, until it takes frames', async () => {
    const small = await startPeerServers(2, { capacityBytes: 100 });
    const world = grpcTransports(small);
    try {
      await world[0]!.send(1, { ...key, chunk: 0 }, rows(5)); // 80 bytes of data + ids room: fills it
      let accepted = false;
      const second = world[0]!.send(1, { ...key, chunk: 1 }, rows(5)).then(() => (accepted = true));
      await new Promise((r) => setTimeout(r, 100));
      expect(accepted).toBe(false);
      await world[1]!.receive(0, { ...key, chunk: 0 }, 1_000);
      await second;
      expect((await world[1]!.receive(0, { ...key, chunk: 1 }, 1_000)).payload.rows).toBe(5);
    } finally {
      await closeAll(world);
      stopPeerServers(small);
    }
  });

  describe('a malformed frame', () => {
    const proto = loadMoeProto();
    const exchangeDef = (proto.moe.v1.Peer.service as unknown as Record<string, grpc.MethodDefinition<PeerMessage, PeerAckOut>>)['Exchange']!;
    /** A raw client that can write arbitrary bytes on the Peer.Exchange stream. */
    const RawPeer = grpc.makeGenericClientConstructor(
      {
        Exchange: {
          ...exchangeDef,
          requestSerialize: (b: Buffer) => b,
        } as unknown as grpc.MethodDefinition<Buffer, PeerAckOut>,
      },
      'Peer',
    );

    it('is refused with a PeerAck naming what is wrong, and the receiver keeps serving', async () => {
      const world = grpcTransports(peers);
      const client = new RawPeer(peers.addresses[1]!, grpc.credentials.createInsecure(), GRPC_OPTIONS);
      try {
        const call = (client as unknown as { Exchange: () => grpc.ClientDuplexStream<Buffer, PeerAckOut> }).Exchange();
        const acks: PeerAckOut[] = [];
        call.on('data', (a: PeerAckOut) => acks.push(a));
        const next = async (n: number) => {
          while (acks.length < n) await new Promise((r) => setTimeout(r, 5));
          return acks[n - 1]!;
        };
        const encode = (m: PeerMessage) => exchangeDef.requestSerialize(m);
        const frame = (over: Record<string, unknown>, payload: Record<string, unknown> = {}) =>
          encode({ frame: { ...key, source: 0, payload: { shape: [2, 4], dtype: 'F32', data: Buffer.alloc(32), ...payload }, ...over } } as PeerMessage);

        call.write(encode({ hello: { runId: world[1]!.runId, source: 0, connection: 0 } }));
        call.write(frame({}, { data: Buffer.alloc(30) }));
        expect((await next(1)).error).toBe('step 1 layer 0 chunk 0 DISPATCH part 0 of 1: F32 [2, 4] in 1 parts puts 32 bytes in this part but 30 arrived');
        call.write(frame({ phase: 9 }));
        expect((await next(2)).error).toBe('unknown phase 9');
        call.write(Buffer.from([0xff, 0xff, 0xff, 0x07]));
        expect((await next(3)).error).toMatch(/^undecodable PeerMessage of 4 bytes: /);
        call.write(frame({ part: 3, parts: 2 }));
        expect((await next(4)).error).toBe('step 1 layer 0 chunk 0 DISPATCH part 3 of 2: part index 3 is not below parts 2');
        call.write(frame({ source: 2 }));
        expect((await next(5)).error).toMatch(/frame says source 2 but the stream's hello said 0/);
        call.write(frame({}, { dtype: 'FP8_E4M3', data: Buffer.alloc(8), blockSize: 128 }));
        expect((await next(6)).error).toMatch(/FP8_E4M3 \[2, 4\] needs 4 bytes of scales but 0 arrived/);
        call.write(frame({ expertIds: Buffer.alloc(4) }));
        expect((await next(7)).error).toMatch(/4 bytes of expert ids for 2 rows \(needs 8 or none\)/);
        call.write(frame({ weights: Buffer.alloc(6) }));
        expect((await next(8)).error).toMatch(/6 bytes of weights is not a whole number of float32 \(a multiple of 4\)/);
        // the same stream still carries a good frame
        call.write(frame({}));
        expect((await next(9)).error).toBe('');
        expect((await world[1]!.receive(0, key, 1_000)).payload.rows).toBe(2);
        call.end();
        // and the receiver still serves ordinary transports
        await world[2]!.send(1, key, rows(3));
        expect((await world[1]!.receive(2, key, 1_000)).payload.rows).toBe(3);
      } finally {
        client.close();
        await closeAll(world);
      }
    });
  });
});
