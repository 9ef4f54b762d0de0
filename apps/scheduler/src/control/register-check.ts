/**
 * What the Scheduler service accepts in Register, Heartbeat and Deregister. Bytes that decode as
 * the message by chance (protobuf skips unknown fields, so random payloads often do) still fail
 * here: a worker id is a short printable name, an address is host:port.
 */
import type { RegisterRequestOut } from '@moe/comm';

/** Worker ids: what `moe worker --worker-id`, `w-0` and `worker-1a2b3c4d` look like. */
export const WORKER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
/** host:port, host a name, IPv4 or [IPv6]. */
const ADDRESS_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$/;

/** Why `workerId` is not a worker id (undefined: it is). */
export function workerIdProblem(workerId: string): string | undefined {
  if (!workerId) return 'worker_id must be set';
  if (!WORKER_ID_PATTERN.test(workerId)) {
    return `worker_id ${JSON.stringify(workerId.slice(0, 40))}${workerId.length > 40 ? '...' : ''} is not a worker id (1 to 128 of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit)`;
  }
  return undefined;
}

/** Why `r` is not a registration (undefined: it is). */
export function registrationProblem(r: RegisterRequestOut): string | undefined {
  const id = workerIdProblem(r.workerId);
  if (id) return id;
  const address = ADDRESS_PATTERN.exec(r.address);
  if (!address || Number(address[2]) < 1 || Number(address[2]) > 65_535) {
    return `address ${JSON.stringify(r.address.slice(0, 60))} is not host:port (the worker's Worker and Peer services)`;
  }
  if (r.backend.length > 256 || r.deviceProfile.length > 256) return 'backend and device_profile must be at most 256 characters';
  return undefined;
}
