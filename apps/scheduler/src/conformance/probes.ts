/**
 * The kit's own ends of the data plane, speaking Peer.Exchange directly (no Transport, no
 * mailbox), so it can do what a correct peer never does:
 * - `SilentPeer`: a Peer service that accepts every frame and sends none (a rank that never
 *   arrives), for the deadline check;
 * - `FrameProbe`: one Exchange stream into the worker that writes hand-made frames, malformed
 *   ones included, and reads the PeerAck of each;
 * - `RawWorker`: the Worker service with status codes and details as they come (no wrapping).
 */
import * as grpc from '@grpc/grpc-js';
import {
  channelCredentials,
  serverCredentials,
  GRPC_OPTIONS,
  loadMoeProto,
  type LoadShardRequest,
  type PeerAckOut,
  type PeerClient,
  type PeerMessage,
  type RunStepRequest,
  type RunStepResponseOut,
  type WorkerClient,
} from '@moe/comm';

/** A Peer service that acknowledges every frame it gets and never sends one. */
export class SilentPeer {
  private readonly server = new grpc.Server(GRPC_OPTIONS);
  /** Frames received, as "step 0 layer 0 chunk 0 DISPATCH from 0". */
  readonly received: string[] = [];
  address = '';

  async start(host = '127.0.0.1'): Promise<string> {
    this.server.addService(loadMoeProto().moe.v1.Peer.service, {
      Exchange: (call: grpc.ServerDuplexStream<PeerMessage, unknown>) => {
        call.on('data', (m: PeerMessage) => {
          const f = m.frame;
          if (!f) return;
          this.received.push(`step ${f.step} layer ${f.layer} chunk ${f.chunk} ${String(f.phase)} from ${f.source}`);
          if (call.writable) call.write({ step: f.step, layer: f.layer, chunk: f.chunk, phase: f.phase, part: f.part, error: '' });
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:0`, serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    this.address = `${host}:${port}`;
    return this.address;
  }

  close(): void {
    this.server.forceShutdown();
  }
}

/** What came back for one probe frame. */
export type ProbeAnswer = { ack: PeerAckOut } | { ended: string };

/** One Peer.Exchange stream into a worker: write a hello, then frames one at a time, each awaited. */
export class FrameProbe {
  private readonly client: PeerClient;
  private readonly call: grpc.ClientDuplexStream<PeerMessage, PeerAckOut>;
  /** Acks that came when no frame was waiting for one (a confused worker). */
  readonly stray: PeerAckOut[] = [];
  private waiter?: (answer: ProbeAnswer) => void;
  private ended?: string;

  /** `hello` undefined: a stream that sends frames without one (which a worker must refuse). */
  constructor(address: string, hello: { runId: string; source: number; connection: number } | undefined) {
    this.client = new (loadMoeProto().moe.v1.Peer)(address, channelCredentials(), GRPC_OPTIONS);
    this.call = this.client.Exchange();
    this.call.on('data', (ack: PeerAckOut) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w({ ack });
      } else this.stray.push(ack);
    });
    const end = (why: string) => {
      this.ended ??= why;
      const w = this.waiter;
      this.waiter = undefined;
      w?.({ ended: this.ended });
    };
    this.call.on('error', (e: grpc.ServiceError) => end(`the worker failed the stream: ${grpc.status[e.code] ?? e.code}: ${e.details || e.message}`));
    this.call.on('end', () => end('the worker ended the stream'));
    if (hello) this.call.write({ hello });
  }

  /** Writes `message` and waits (up to `timeoutMs`) for the next PeerAck. */
  send(message: PeerMessage, timeoutMs: number): Promise<ProbeAnswer | { timeout: true }> {
    if (this.ended) return Promise.resolve({ ended: this.ended });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve({ timeout: true });
      }, timeoutMs);
      this.waiter = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      this.call.write(message);
    });
  }

  close(): void {
    this.call.end();
    this.call.cancel();
    this.client.close();
  }
}

/** A Worker RPC's outcome as it came: the reply, or the status code and details. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; code: number; details: string };

/** The Worker service without WorkerHandle's error wrapping: the checks read status codes and details as they are. */
export class RawWorker {
  private readonly client: WorkerClient;
  constructor(address: string) {
    this.client = new (loadMoeProto().moe.v1.Worker)(address, channelCredentials(), GRPC_OPTIONS);
  }
  private call<T>(invoke: (o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: T) => void) => void, timeoutMs: number): Promise<Outcome<T>> {
    return new Promise((resolve) =>
      invoke({ deadline: new Date(Date.now() + timeoutMs) }, (e, v) => resolve(e ? { ok: false, code: e.code, details: e.details || e.message } : { ok: true, value: v as T })),
    );
  }
  loadShard(request: LoadShardRequest, timeoutMs: number) {
    return this.call<unknown>((o, cb) => this.client.LoadShard(request, o, cb), timeoutMs);
  }
  runStep(request: RunStepRequest, timeoutMs: number) {
    return this.call<RunStepResponseOut>((o, cb) => this.client.RunStep(request, o, cb), timeoutMs);
  }
  close(): void {
    this.client.close();
  }
}
