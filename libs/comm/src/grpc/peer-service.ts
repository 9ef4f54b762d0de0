import * as grpc from '@grpc/grpc-js';
import { tokenProblem } from './cluster-token';
import type { PeerAck, PeerHandlers, PeerHello, SocketEndpoint } from '../proto/types';
import { ackOf, MalformedFrameError, parseFramePart } from './frame-message';
import type { InboundConnection, PeerMailbox } from './peer-mailbox';
import { widenReceiveWindow } from './receive-window';
import type { InboundPeerMessage } from './tolerant-deserialize';

/** Messages queued on one stream before it stops reading (the sender's ack window keeps it far below). */
const PAUSE_AT = 64;
const RESUME_AT = 16;

/**
 * The Peer service's handlers over `mailbox`: Exchange, and DataPlanes (which faster planes this
 * worker serves, see libs/comm/src/socket). Add them to the worker's server:
 * `server.addService(loadMoeProto().moe.v1.Peer.service, peerServiceHandlers(mailbox))`.
 *
 * Each Exchange stream is served in order: a PeerHello, then frames (or parts), each answered by
 * one PeerAck once the mailbox took it, or refused with PeerAck.error saying why (another run,
 * malformed sizes, unknown phase, duplicate, undecodable bytes). A refused frame does not end
 * the stream.
 */
export function peerServiceHandlers(
  mailbox: PeerMailbox,
  options: {
    token?: string;
    log?: (line: string) => void;
    /** The socket data plane this worker serves, for Peer.DataPlanes (undefined: Exchange only). */
    socketEndpoint?: () => SocketEndpoint | undefined;
  } = {},
): PeerHandlers {
  return {
    DataPlanes: (call, callback) => {
      const problem = tokenProblem(call.metadata, options.token);
      if (problem) {
        options.log?.(`Peer: refused DataPlanes from ${call.getPeer()}: ${problem}`);
        callback({ code: grpc.status.UNAUTHENTICATED, details: `Peer.DataPlanes: ${problem}`, metadata: new grpc.Metadata() });
        return;
      }
      const socket = options.socketEndpoint?.();
      callback(null, socket ? { socket } : {});
    },
    Exchange: (call) => {
      const problem = tokenProblem(call.metadata, options.token);
      if (problem) {
        // Not this cluster's: refused before a single frame is read.
        options.log?.(`Peer: refused Exchange from ${call.getPeer()}: ${problem}`);
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `Peer.Exchange: ${problem}`, metadata: new grpc.Metadata() });
        return;
      }
      widenReceiveWindow(call, mailbox.receiveWindowBytes);
      serveStream(mailbox, call as unknown as grpc.ServerDuplexStream<InboundPeerMessage, PeerAck>);
    },
  };
}

function serveStream(mailbox: PeerMailbox, call: grpc.ServerDuplexStream<InboundPeerMessage, PeerAck>): void {
  let hello: PeerHello | undefined;
  let untrack: (() => void) | undefined;
  let chain: Promise<void> = Promise.resolve();
  let backlog = 0;
  let paused = false;

  const ack = (reply: PeerAck): void => {
    if (call.writable && !call.cancelled) call.write(reply);
  };

  const handle = async (message: InboundPeerMessage): Promise<void> => {
    if ('undecodable' in message) {
      ack(ackOf(undefined, message.undecodable));
      return;
    }
    if (message.hello) {
      hello = message.hello;
      untrack?.();
      const connection: InboundConnection = {
        source: hello.source ?? 0,
        connection: hello.connection ?? 0,
        runId: hello.runId ?? '',
        peer: call.getPeer(),
      };
      untrack = mailbox.track(connection);
      return;
    }
    if (!message.frame) {
      ack(ackOf(undefined, 'PeerMessage carries neither a hello nor a frame'));
      return;
    }
    let error = '';
    try {
      if (!hello) throw new MalformedFrameError('frame before PeerHello: a stream starts with a hello naming run and source');
      await mailbox.acceptPart(hello.runId ?? '', parseFramePart(message.frame, hello.source ?? 0));
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    ack(ackOf(message.frame, error));
  };

  call.on('data', (message: InboundPeerMessage) => {
    backlog++;
    if (backlog >= PAUSE_AT && !paused) {
      paused = true;
      call.pause();
    }
    chain = chain
      .then(() => handle(message))
      .catch(() => {}) // handle() answers every failure with an ack; nothing else can fail here
      .then(() => {
        backlog--;
        if (paused && backlog <= RESUME_AT) {
          paused = false;
          call.resume();
        }
      });
  });
  // The stream was cancelled or broke (the sender was killed, or its connection dropped; a stream
  // that ends normally is neither): receives waiting for its frames fail now, naming it, instead
  // of waiting out their timeout. Frames so far stay.
  const broke = (why: string) => {
    untrack?.();
    if (hello) mailbox.peerLost(hello.runId ?? '', hello.source ?? 0, call.getPeer(), why);
  };
  call.on('end', () => {
    void chain.then(() => {
      untrack?.();
      if (call.writable) call.end();
    });
  });
  call.on('error', (error: Error) => broke(error.message));
  call.on('cancelled', () => broke('stream cancelled'));
  call.on('close', () => untrack?.());
}
