import { Buffer } from 'node:buffer';
import { encodeAck, SocketProtocolError } from './records';

/**
 * Frames received and not yet acknowledged. The mailbox may settle them out of order (a frame
 * somebody waits for skips the capacity queue); acks go out in order, once per turn of the event
 * loop, as "the first n frames are settled", with a record of its own for each refusal.
 */
export class AckQueue {
  private next = 0;
  private acked = 0;
  private readonly results = new Map<number, string>();
  private scheduled = false;

  /** `write` sends bytes to the frames' sender (once per turn of the event loop at most). */
  constructor(private readonly write: (bytes: Buffer) => void) {}

  /** Checks that frame `seq` is the next one of this connection; returns it. */
  received(seq: number): number {
    if (seq !== this.next) throw new SocketProtocolError(`frame ${seq} arrived where frame ${this.next} was next`);
    return this.next++;
  }

  settle(seq: number, error: string): void {
    this.results.set(seq, error);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const out: Buffer[] = [];
    let covered = this.acked;
    while (this.results.has(this.acked)) {
      const error = this.results.get(this.acked)!;
      this.results.delete(this.acked++);
      if (error) {
        out.push(encodeAck(this.acked, error));
        covered = this.acked;
      }
    }
    if (this.acked > covered) out.push(encodeAck(this.acked));
    if (out.length > 0) this.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }
}
