#!/usr/bin/env node
// A deliberately broken variant of worker.mjs, for the conformance kit's own tests and to show
// what a failure looks like: it never sends a frame that carries no rows, breaking the rule
// "exactly one frame per (step, layer, chunk, phase) to every peer, even an empty one". The
// kit's zero-token-frames check fails on it, naming the frame its peer waited for.
//
//   node examples/plain-js-worker/broken-worker.mjs --scheduler host:port   (flags as worker.mjs)
import { PeerLinks } from './peer.mjs';
import { main } from './worker.mjs';

const send = PeerLinks.prototype.send;
PeerLinks.prototype.send = function (dest, key, frame) {
  if (frame.payload.rows === 0 && key.phase !== 'ALLREDUCE') return Promise.resolve(); // the bug
  return send.call(this, dest, key, frame);
};

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
