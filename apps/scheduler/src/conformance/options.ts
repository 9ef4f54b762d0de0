/** How to run the conformance kit against one worker. */
import type { CheckResult } from './report';
export interface ConformanceOptions {
  /** host:port of a worker that is already running; it should register with the kit's scheduler. */
  worker?: string;
  /** A shell command that starts the worker; `{scheduler}` becomes the kit's scheduler address (else `--scheduler <address>` is appended). */
  command?: string;
  /** Directory the command runs in. Default: the current directory. */
  cwd?: string;
  /** Interface of the kit's scheduler and peers. Default 127.0.0.1. */
  host?: string;
  /** Port of the kit's scheduler (for a worker started by hand). Default 0: any free port. */
  schedulerPort?: number;
  /** Backend of the reference peer. Default: the worker's own when it registers as "cpu" or "sim", else "cpu". */
  peerBackend?: string;
  /** LoadShard.backend_options_json of every run (both ranks), e.g. the sim profile. */
  backendOptions?: Record<string, unknown>;
  /** The worker models a device and does not learn (like `sim`): check the protocol, not the numbers. Default: auto (backend "sim" or a device profile). */
  modeled?: boolean;
  /** The reference peer's --peer-timeout. Default 3000 ms. */
  peerTimeoutMs?: number;
  /** RunStep deadline of the deadline check. Default 5000 ms. */
  deadlineMs?: number;
  /** Deadline of every other RPC. Default 20 000 ms. */
  rpcTimeoutMs?: number;
  /** How long to wait for the worker's Register. Default 30 000 ms. */
  registerTimeoutMs?: number;
  /** Do not wait for a Register (a --worker that registers elsewhere): register and heartbeat are skipped. */
  skipRegister?: boolean;
  /** Lines about what the kit does, and the worker's output. */
  log?: (line: string) => void;
  /** Called as each check ends. */
  onCheck?: (result: CheckResult) => void;
}
