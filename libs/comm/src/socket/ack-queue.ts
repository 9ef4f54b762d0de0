import { Buffer } from 'node:buffer';
import { encodeAck, SocketProtocolError } from './records';

/**
 * The frames of one connection (generation `generation`) received and not yet acknowledged.
 * The mailbox may settle them out of order (a frame somebody waits for skips the capacity
 * queue); acks go out in order, as "the first n frames are settled", with a record of their own
 * for each refusal: at the end of the turn of the event loop that settled them, or earlier when
 * a frame is about to leave for the same peer (take()), in the same write.
 */
export class AckQueue {
  private next = 0;
  private acked = 0;
  private readonly results = new Map<number, string>();
  private scheduled = false;

  /** `write` sends bytes to the frames' sender (once per turn of the event loop at most). */
  constructor(
    private readonly generation: number,
    private readonly write: (bytes: Buffer) => void,
  ) {}

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

  /** The acks due now, to go out with a frame (the end-of-turn write then has nothing left to send). */
  take(): Buffer | undefined {
    return this.acks();
  }

  private flush(): void {
    this.scheduled = false;
    const bytes = this.acks();
    if (bytes) this.write(bytes);
  }

  private acks(): Buffer | undefined {
    const out: Buffer[] = [];
    let covered = this.acked;
    while (this.results.has(this.acked)) {
      const error = this.results.get(this.acked)!;
      this.results.delete(this.acked++);
      if (error) {
        out.push(encodeAck(this.acked, this.generation, error));
        covered = this.acked;
      }
    }
    if (this.acked > covered) out.push(encodeAck(this.acked, this.generation));
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
  }
}
