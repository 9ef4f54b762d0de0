/** The control plane: Register, Heartbeat, Health, re-registration after a scheduler restart, Shutdown. */
import { PEER_ID, sleep } from '../kit';
import { CheckFailure, CheckSkipped } from '../report';
import type { Check } from './check';
import { WorkerHandle } from '../../control/worker-client';
import type { RegisteredWorker } from '../../control/rendezvous';

export const register: Check = {
  id: 'register',
  title: 'registers with the scheduler (worker_id, address, backend)',
  async run(kit) {
    if (kit.o.skipRegister) throw new CheckSkipped('asked not to wait for a Register');
    const timeoutMs = kit.o.registerTimeoutMs ?? 30_000;
    const wanted = (w: RegisteredWorker) => w.workerId !== PEER_ID && (!kit.o.worker || w.address === kit.o.worker);
    const worker = await new Promise<RegisteredWorker | undefined>((resolve) => {
      const done = (w: RegisteredWorker | undefined) => {
        off();
        clearTimeout(timer);
        resolve(w);
      };
      const off = kit.scheduler.onRegister((w) => wanted(w) && done(w));
      const timer = setTimeout(() => done(undefined), timeoutMs);
      void kit.target?.exited.then(() => done(undefined));
      const already = kit.scheduler.liveWorkers().find(wanted);
      if (already) done(already);
    });
    if (!worker) {
      if (kit.target?.exit) throw new CheckFailure(`the worker never registered: ${kit.target.describeExit()}`);
      const others = kit.scheduler.liveWorkers().filter((w) => w.workerId !== PEER_ID);
      throw new CheckFailure(
        `no Register within ${timeoutMs} ms` +
          (kit.o.worker ? ` from a worker at ${kit.o.worker}` : '') +
          (others.length ? ` (registered instead: ${others.map((w) => `${w.workerId} at ${w.address}`).join(', ')})` : '') +
          `; a worker calls Scheduler.Register at the address given with --scheduler (${kit.scheduler.address})`,
      );
    }
    kit.registered = worker;
    kit.address = worker.address;
    const problems: string[] = [];
    if (!/^[^:\s]+:\d+$/.test(worker.address) && !/^\[.*\]:\d+$/.test(worker.address)) problems.push(`address "${worker.address}" is not host:port`);
    if (!worker.backend) problems.push('backend is empty (name the backend, e.g. "cpu" or your own)');
    if (problems.length) throw new CheckFailure(`Register of ${worker.workerId}: ${problems.join('; ')}`);
    return `${worker.workerId} at ${worker.address}, backend ${worker.backend}${worker.deviceProfile ? ` (device ${worker.deviceProfile})` : ''}, pid ${worker.pid || '-'}`;
  },
};

export const heartbeat: Check = {
  id: 'heartbeat',
  title: 'heartbeats at the interval Register answered',
  async run(kit) {
    const w = kit.registered;
    if (!w) throw new CheckSkipped('the worker did not register with the kit');
    const interval = kit.scheduler.heartbeatIntervalMs;
    const waitMs = Math.max(2_000, 4 * interval);
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      if (w.lastSeen > w.registeredAt) return `heard from it ${w.lastSeen - w.registeredAt} ms after Register (interval ${interval} ms)`;
      await sleep(25);
    }
    throw new CheckFailure(`no Heartbeat within ${waitMs} ms of Register; Register answered heartbeat_interval_ms=${interval}`);
  },
};

export const health: Check = {
  id: 'health',
  title: 'answers Health with its worker_id, state idle, before any run',
  async run(kit) {
    const handle = new WorkerHandle(0, kit.registered?.workerId ?? '?', kit.address);
    try {
      const h = await handle.health(kit.rpcMs);
      if (kit.registered && h.workerId !== kit.registered.workerId) {
        throw new CheckFailure(`Health says worker_id "${h.workerId}", Register said "${kit.registered.workerId}"`);
      }
      if (!['idle', 'loaded'].includes(h.state)) throw new CheckFailure(`Health state is "${h.state}"; before a run it must be "idle" (or "loaded" from an earlier run)`);
      return `worker_id ${h.workerId}, state ${h.state}`;
    } finally {
      handle.close();
    }
  },
};

export const reregister: Check = {
  id: 're-register',
  title: 'registers again, same worker_id, when a restarted scheduler answers Heartbeat known: false',
  async run(kit) {
    const before = kit.registered;
    if (!before || kit.o.skipRegister) throw new CheckSkipped('the worker did not register with the kit');
    const address = kit.scheduler.address;
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    await kit.scheduler.close();
    kit.scheduler = kit.newScheduler(port);
    await kit.scheduler.start();
    const waitMs = Math.max(5_000, 10 * kit.scheduler.heartbeatIntervalMs);
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      const again = kit.scheduler.liveWorkers().find((w) => w.workerId === before.workerId);
      if (again) {
        if (again.address !== before.address) throw new CheckFailure(`registered again at ${again.address}, first at ${before.address}; keep the address`);
        kit.registered = again;
        return `the scheduler restarted on ${address}; ${again.workerId} registered again after ${Date.now() - (until - waitMs)} ms`;
      }
      await sleep(50);
    }
    throw new CheckFailure(`the scheduler restarted on ${address} and ${before.workerId} did not register again within ${waitMs} ms; a Heartbeat answered known: false means Register again`);
  },
};

export const shutdown: Check = {
  id: 'shutdown',
  title: 'answers Shutdown, then stops serving',
  async run(kit) {
    const handle = new WorkerHandle(0, kit.registered?.workerId ?? '?', kit.address);
    try {
      await handle.shutdown('conformance: the last check', kit.rpcMs);
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        if (kit.target?.exit) return `answered Shutdown; the process exited (${kit.target.describeExit().split(';')[0]})`;
        const alive = await handle.health(1_000).then(
          () => true,
          () => false,
        );
        if (!alive && !kit.target) return 'answered Shutdown; Health no longer answers';
        await sleep(100);
      }
      throw new CheckFailure('answered Shutdown but was still running 10 s later; after answering Shutdown a worker exits');
    } finally {
      handle.close();
    }
  },
};
