import type { Http2Session } from 'node:http2';

/** Largest HTTP/2 frame a sender may use towards us (HTTP/2 allows up to 2^24 - 1). */
const MAX_FRAME_SIZE = 1024 * 1024;
const widened = new WeakSet<Http2Session>();

/**
 * Raises the HTTP/2 receive window (connection and streams) and max frame size of the session a
 * server call arrived on, once per session. grpc-js lets a client set its window
 * ('grpc-node.flow_control_window') but leaves servers at Node's 64 KiB default, which limits a
 * client-to-server stream to a few hundred MB/s on loopback; the Peer service receives the bulk
 * of the data plane, so it asks for more. grpc-js does not expose the session, so this walks its
 * call objects: when their layout changes, it finds nothing and returns false (the transport then
 * still works, only slower).
 */
export function widenReceiveWindow(call: unknown, bytes: number): boolean {
  if (bytes <= 0) return false;
  try {
    let node = (call as { call?: unknown }).call;
    for (let depth = 0; node && depth < 8; depth++) {
      const session = (node as { stream?: { session?: Http2Session } }).stream?.session;
      if (session) {
        if (widened.has(session) || session.destroyed) return true;
        widened.add(session);
        const window = Math.min(bytes, 2 ** 31 - 1);
        session.setLocalWindowSize(window);
        session.settings({ initialWindowSize: window, maxFrameSize: MAX_FRAME_SIZE });
        return true;
      }
      node = (node as { nextCall?: unknown }).nextCall;
    }
  } catch {
    // a session torn down meanwhile, or internals that moved: keep the defaults
  }
  return false;
}
