import type { PeerMessageOut } from '../proto/types';

/** A PeerMessage whose bytes could not be decoded; the Peer service refuses it with `undecodable` as the reason. */
export interface UndecodablePeerMessage {
  body?: undefined;
  hello?: null;
  frame?: null;
  undecodable: string;
}

export type InboundPeerMessage = PeerMessageOut | UndecodablePeerMessage;

/**
 * Wraps a request deserializer so that bytes which are not a PeerMessage become an
 * UndecodablePeerMessage (answered with a PeerAck error) instead of failing the whole stream.
 */
export function tolerantDeserializer(inner: (bytes: Buffer) => PeerMessageOut): (bytes: Buffer) => InboundPeerMessage {
  const tolerant = (bytes: Buffer): InboundPeerMessage => {
    try {
      return inner(bytes);
    } catch (error) {
      return { undecodable: `undecodable PeerMessage of ${bytes.byteLength} bytes: ${(error as Error).message}` };
    }
  };
  return Object.assign(tolerant, { tolerant: true });
}

const UNDECODABLE = Symbol.for('moe.undecodable');

/**
 * Wraps a unary request deserializer so that bytes which are not the request message become a
 * marker (see `undecodableReason`) the handler refuses with INVALID_ARGUMENT, instead of grpc-js
 * answering INTERNAL.
 */
export function markingDeserializer(what: string, inner: (bytes: Buffer) => unknown): (bytes: Buffer) => unknown {
  return (bytes: Buffer) => {
    try {
      return inner(bytes);
    } catch (error) {
      return { [UNDECODABLE]: `undecodable ${what} of ${bytes.byteLength} bytes: ${(error as Error).message}` };
    }
  };
}

/** Why `request` could not be decoded (see `markingDeserializer`), or undefined when it was. */
export function undecodableReason(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null ? ((request as Record<symbol, string>)[UNDECODABLE] ?? undefined) : undefined;
}
