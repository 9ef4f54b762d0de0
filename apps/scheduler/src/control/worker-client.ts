/**
 * The scheduler's handle on one worker of a run: its rank, and the Worker RPCs as promises.
 * Every call has a deadline; a failure becomes a `WorkerRpcError` naming the rank, the worker,
 * the method and the gRPC status.
 */
import * as grpc from '@grpc/grpc-js';
import {
  channelCredentials,
  clientOptions,
  envToken,
  loadMoeProto,
  type FetchParamsResponseOut,
  type FlightRecordResponseOut,
  type HealthResponseOut,
  type LoadShardRequest,
  type LoadShardResponseOut,
  type RunStepRequest,
  type RunStepResponseOut,
  type WorkerClient,
} from '@moe/comm';
import { WorkerRpcError } from '../errors';

type Callback<T> = (error: grpc.ServiceError | null, value?: T) => void;

export class WorkerHandle {
  private readonly client: WorkerClient;

  constructor(
    readonly rank: number,
    readonly workerId: string,
    readonly address: string,
    /** Cluster token sent as `x-moe-token` on every call. Default `MOE_CLUSTER_TOKEN`; "": none. */
    token: string | undefined = envToken(),
  ) {
    const proto = loadMoeProto();
    this.client = new proto.moe.v1.Worker(address, channelCredentials(), clientOptions(token || undefined));
  }

  /** "rank 1 (worker w-1 at 127.0.0.1:40211)" */
  describe(): string {
    return `rank ${this.rank} (worker ${this.workerId} at ${this.address})`;
  }

  /** `label` names the call in errors ("RunStep of step 3"); `method` is the RPC's name. */
  private call<T>(
    method: string,
    timeoutMs: number,
    invoke: (options: grpc.CallOptions, callback: Callback<T>) => void,
    label = method,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      invoke({ deadline: new Date(Date.now() + timeoutMs) }, (error, value) => {
        if (error) {
          const status = grpc.status[error.code] ?? String(error.code);
          const detail = error.code === grpc.status.DEADLINE_EXCEEDED ? `no reply within ${timeoutMs} ms` : error.details || error.message;
          reject(new WorkerRpcError(`${label} on ${this.describe()} failed: ${status}: ${detail}`, this.rank, method, error.code));
        } else if (value === undefined || value === null) {
          reject(new WorkerRpcError(`${label} on ${this.describe()} returned no reply`, this.rank, method, -1));
        } else {
          resolve(value);
        }
      });
    });
  }

  loadShard(request: LoadShardRequest, timeoutMs: number): Promise<LoadShardResponseOut> {
    return this.call('LoadShard', timeoutMs, (o, cb) => this.client.LoadShard(request, o, cb));
  }

  runStep(request: RunStepRequest, timeoutMs: number): Promise<RunStepResponseOut> {
    return this.call('RunStep', timeoutMs, (o, cb) => this.client.RunStep(request, o, cb), `RunStep of step ${request.step ?? 0}`);
  }

  fetchParams(runId: string, timeoutMs: number, includeOptimizerState = false): Promise<FetchParamsResponseOut> {
    return this.call('FetchParams', timeoutMs, (o, cb) => this.client.FetchParams({ runId, includeOptimizerState }, o, cb));
  }

  health(timeoutMs: number): Promise<HealthResponseOut> {
    return this.call('Health', timeoutMs, (o, cb) => this.client.Health({}, o, cb));
  }

  /** The worker's flight recorder (its last ops); optional in the contract: may fail UNIMPLEMENTED. */
  flightRecord(timeoutMs: number): Promise<FlightRecordResponseOut> {
    return this.call('FlightRecord', timeoutMs, (o, cb) => this.client.FlightRecord({}, o, cb));
  }

  async shutdown(reason: string, timeoutMs: number): Promise<void> {
    await this.call('Shutdown', timeoutMs, (o, cb) => this.client.Shutdown({ reason }, o, cb));
  }

  close(): void {
    this.client.close();
  }
}
