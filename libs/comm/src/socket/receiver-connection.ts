import type net from 'node:net';
import { encodeRefuse, type RecordHandler } from './records';

/**
 * A connection a receiving rank dialed into this worker's socket server and was welcomed on:
 * this worker writes its frames for that rank on it (OutboundLink) and reads the acks. The
 * server reads the socket and passes each record after the welcome to `onRecord`, and the
 * socket's end to `onClose`, both set by whoever took the connection.
 */
export class ReceiverConnection {
  onRecord?: RecordHandler;
  onClose?: (why: string) => void;
  /** Set once the dialer said goodbye or this side refused it: its end is not a lost peer. */
  closing = false;

  constructor(
    readonly runId: string,
    /** The dialing rank (the frames' destination). */
    readonly rank: number,
    /** Where it dialed from ("unix socket" or host:port), for messages. */
    readonly peer: string,
    /** Which dial of the dialer's link this is: the acks of its frames name it. */
    readonly generation: number,
    readonly socket: net.Socket,
    private readonly log?: (line: string) => void,
  ) {}

  /** Tells the dialer why it is being closed, then closes. */
  refuse(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.log?.(`Peer socket: closed the connection from rank ${this.rank} (${this.peer}) of run ${this.runId}: ${reason}`);
    if (!this.socket.destroyed) this.socket.end(encodeRefuse(reason));
    this.socket.destroySoon?.();
  }
}
