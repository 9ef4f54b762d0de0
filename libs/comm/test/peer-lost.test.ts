/**
 * A sender whose stream breaks mid-step (process killed): receives waiting for its frames fail at
 * once with PeerUnreachableError naming it, instead of waiting out their timeout; others wait on.
 */
import { describe, expect, it } from 'vitest';
import { PeerMailbox } from '../src/grpc/peer-mailbox';
import { PeerUnreachableError } from '../src/transport/errors';

describe('PeerMailbox.peerLost', () => {
  it('fails only the receives waiting on the lost source, at once, naming it', async () => {
    const mailbox = new PeerMailbox();
    mailbox.open('run-1', 0, 3);
    const key = { step: 4, layer: 1, chunk: 0, phase: 'DISPATCH' as const };
    const fromLost = mailbox.receive(1, key, 30_000);
    const fromOther = mailbox.receive(2, key, 200);
    const started = Date.now();
    mailbox.peerLost('run-1', 1, '127.0.0.1:5555', 'read ECONNRESET');
    await expect(fromLost).rejects.toBeInstanceOf(PeerUnreachableError);
    await expect(fromLost).rejects.toThrow(/rank 1 at 127\.0\.0\.1:5555 is unreachable: its stream to rank 0 broke .*ECONNRESET/);
    // "At once" means long before the receive's own 30 s timeout; 100 ms flaked under load 30-60.
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(fromOther).rejects.toThrow(/timed out|timeout|within/i);
    // Later receives from it fail at once too, until it opens a new stream.
    await expect(mailbox.receive(1, { ...key, layer: 2 }, 30_000)).rejects.toBeInstanceOf(PeerUnreachableError);
    const untrack = mailbox.track({ source: 1, connection: 0, runId: 'run-1', peer: '127.0.0.1:5556' });
    await expect(mailbox.receive(1, { ...key, layer: 3 }, 50)).rejects.not.toBeInstanceOf(PeerUnreachableError);
    untrack();
  });

  it('ignores a broken stream of another run', async () => {
    const mailbox = new PeerMailbox();
    mailbox.open('run-2', 0, 2);
    const waiting = mailbox.receive(1, { step: 0, layer: 0, chunk: 0, phase: 'COMBINE' }, 150);
    mailbox.peerLost('run-1', 1, '127.0.0.1:5555', 'gone');
    await expect(waiting).rejects.not.toBeInstanceOf(PeerUnreachableError);
  });
});
