// What crosses the wire: tensors, the row codecs (F32, BF16, FP8_E4M3 with block scales) and the
// checks a received Frame must pass. Every number in a `bytes` field is little-endian; this file
// uses typed arrays directly, so it needs a little-endian host (checked below).

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('plain-js worker: needs a little-endian host');

export const DTYPE_BYTES = { F32: 4, BF16: 2, FP8_E4M3: 1 };
export const PHASES = ['DISPATCH', 'COMBINE', 'COMBINE_BACKWARD', 'DISPATCH_BACKWARD', 'ALLREDUCE'];
/**
 * Values per float32 scale in FP8_E4M3 payloads this worker sends (a receiver reads block_size):
 * the largest divisor of the row length not above 128, so a block never spans two rows and a row
 * is rounded the same whichever rows share its frame.
 */
export function fp8BlockSize(cols) {
  for (let b = Math.min(cols, 128); b > 1; b--) if (cols % b === 0) return b;
  return 1;
}

/** A request the worker refuses (gRPC INVALID_ARGUMENT); the message says what is wrong. */
export class InvalidRequest extends Error {}

/** A copy of `bytes` in a fresh, aligned buffer (received Buffers sit at any offset). */
export const aligned = (bytes) => new Uint8Array(bytes).buffer;
const asBuffer = (view) => Buffer.from(view.buffer, view.byteOffset, view.byteLength);

/** A wire F32 Tensor as { shape, data }, checked; `what` names it in errors. */
export function f32FromMsg(msg, what) {
  if (!msg) throw new InvalidRequest(`${what}: tensor is missing`);
  if (msg.dtype !== 'F32') throw new InvalidRequest(`${what}: dtype ${msg.dtype} where F32 was expected`);
  const shape = msg.shape.map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  if (msg.data.length !== 4 * n) throw new InvalidRequest(`${what}: shape [${shape}] needs ${4 * n} bytes of F32 but ${msg.data.length} arrived`);
  return { shape, data: new Float32Array(aligned(msg.data)) };
}

/** A wire I32 vector as an Int32Array, checked. */
export function i32FromMsg(msg, what) {
  if (!msg) throw new InvalidRequest(`${what}: tensor is missing`);
  if (msg.dtype !== 'I32') throw new InvalidRequest(`${what}: dtype ${msg.dtype} where I32 was expected`);
  const n = msg.shape.map(Number).reduce((a, b) => a * b, 1);
  if (msg.data.length !== 4 * n) throw new InvalidRequest(`${what}: shape [${msg.shape}] needs ${4 * n} bytes of I32 but ${msg.data.length} arrived`);
  return new Int32Array(aligned(msg.data));
}

export const f32Msg = (t) => ({ shape: t.shape, dtype: 'F32', data: asBuffer(t.data) });

// ---------------------------------------------------------------- row codecs

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits of float32 bits: round to nearest even; NaN stays a quiet NaN. */
function bf16OfBits(bits) {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** OCP e4m3fn byte of float32 bits: round to nearest even, saturate at +-448, NaN -> 0x7f. */
function e4m3OfBits(bits) {
  const sign = (bits >>> 24) & 0x80;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return 0x7f;
  if (abs >= 0x43e00000) return sign | 0x7e;
  if (abs < 0x3c800000) {
    u32[0] = abs;
    const y = f32[0] * 512;
    const floor = Math.floor(y);
    const frac = y - floor;
    return sign | (frac > 0.5 || (frac === 0.5 && (floor & 1) === 1) ? floor + 1 : floor);
  }
  const rounded = abs + 0x7ffff + ((abs >>> 20) & 1);
  return sign | Math.min((rounded >>> 20) - (120 << 3), 0x7e);
}

/** Value of every e4m3fn byte. */
const E4M3 = Float64Array.from({ length: 256 }, (_, b) => {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 0xf;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? sign * m * 2 ** -9 : sign * (1 + m / 8) * 2 ** (e - 7);
});

/** values [rows, cols] float32 -> { dtype, rows, cols, data: Uint8Array, scales?, blockSize? } in `codec` (F32, BF16, FP8_E4M3). */
export function encodeRows(values, rows, cols, codec) {
  if (codec === 'F32') return { dtype: 'F32', rows, cols, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (codec === 'BF16') {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < bits.length; i++) out[i] = bf16OfBits(bits[i]);
    return { dtype: 'BF16', rows, cols, data: new Uint8Array(out.buffer) };
  }
  // FP8_E4M3: one scale per block = amax / 448 over the block's finite values (0 for a block of zeros)
  const n = values.length;
  const data = new Uint8Array(n);
  const block = fp8BlockSize(cols);
  const scales = new Float32Array(Math.ceil(n / block));
  for (let b = 0; b < scales.length; b++) {
    const begin = b * block, end = Math.min(n, begin + block);
    let amax = 0, infinite = false;
    for (let i = begin; i < end; i++) {
      const a = Math.abs(values[i]);
      if (a === Infinity) infinite = true;
      else if (a > amax) amax = a;
    }
    let scale = Math.fround(amax / 448);
    if (scale === 0 && infinite) scale = 1;
    scales[b] = scale;
    for (let i = begin; i < end; i++) {
      f32[0] = scale === 0 ? values[i] : values[i] / scale;
      data[i] = e4m3OfBits(u32[0]);
    }
  }
  return { dtype: 'FP8_E4M3', rows, cols, data, scales: new Uint8Array(scales.buffer), blockSize: block };
}

/** An encoded payload -> a fresh Float32Array [rows * cols]. */
export function decodeRows(t) {
  const n = t.rows * t.cols;
  const out = new Float32Array(n);
  if (t.dtype === 'F32') out.set(new Float32Array(aligned(t.data)));
  else if (t.dtype === 'BF16') {
    const bits = new Uint16Array(aligned(t.data));
    const o = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o[i] = bits[i] << 16;
  } else {
    const scales = new Float32Array(aligned(t.scales));
    for (let i = 0; i < n; i++) out[i] = E4M3[t.data[i]] * scales[Math.floor(i / t.blockSize)];
  }
  return out;
}

/** An encoded payload as a wire Tensor of shape [rows, cols]. */
export function tensorMsgOf(t) {
  const msg = { shape: [t.rows, t.cols], dtype: t.dtype, data: asBuffer(t.data) };
  if (t.dtype === 'FP8_E4M3') Object.assign(msg, { scales: asBuffer(t.scales), blockSize: t.blockSize });
  return msg;
}

// ---------------------------------------------------------------- frames

export const keyString = (k) => `step ${k.step}${k.layer >= 0 ? ` layer ${k.layer}` : ''} chunk ${k.chunk} ${k.phase}`;
export const keyId = (source, k) => `${source}/${k.step}/${k.layer}/${k.chunk}/${k.phase}`;

/** Byte range of part `part` of `parts` of `total` data bytes: every part but the last holds ceil(total / parts). */
export function partRange(total, parts, part) {
  const size = Math.ceil(total / parts);
  return { begin: Math.min(total, part * size), end: Math.min(total, (part + 1) * size) };
}

/**
 * Checks a received Frame against its own header and the stream's hello; returns its part.
 * Throws with the reason the PeerAck carries back: an unknown phase, a source that is not the
 * hello's, a part index past `parts`, a dtype or shape that is not rows, or byte counts (data,
 * scales, expert ids) that do not match the shape.
 */
export function parseFrame(frame, helloSource) {
  if (!PHASES.includes(frame.phase)) throw new Error(`unknown phase ${frame.phase}`);
  const key = { step: frame.step, layer: frame.layer, chunk: frame.chunk, phase: frame.phase };
  const parts = frame.parts || 1;
  const what = `${keyString(key)} part ${frame.part} of ${parts}`;
  if (key.layer < -1) throw new Error(`${what}: layer ${key.layer} (use -1 for none)`);
  if (frame.source !== helloSource) throw new Error(`${what}: frame says source ${frame.source} but the stream's hello said ${helloSource}`);
  if (frame.part >= parts) throw new Error(`${what}: part index ${frame.part} is not below parts ${parts}`);
  const p = frame.payload;
  if (!p) throw new Error(`${what}: payload is missing`);
  if (!(p.dtype in DTYPE_BYTES)) throw new Error(`${what}: dtype ${p.dtype} is not a row dtype (F32, BF16 or FP8_E4M3)`);
  const shape = p.shape.map(Number);
  if (shape.length !== 1 && shape.length !== 2) throw new Error(`${what}: shape [${shape}] has ${shape.length} dims; rows need [rows, cols] or [n]`);
  const [rows, cols] = shape.length === 2 ? shape : [1, shape[0]];
  const totalBytes = rows * cols * DTYPE_BYTES[p.dtype];
  const { begin, end } = partRange(totalBytes, parts, frame.part);
  if (p.data.length !== end - begin) {
    throw new Error(`${what}: ${p.dtype} [${rows}, ${cols}] in ${parts} parts puts ${end - begin} bytes in this part but ${p.data.length} arrived`);
  }
  const blockSize = p.dtype === 'FP8_E4M3' ? p.blockSize : 0;
  if (p.dtype === 'FP8_E4M3' && !(blockSize > 0)) throw new Error(`${what}: FP8_E4M3 needs a positive block_size, got ${blockSize}`);
  if (frame.part === 0) {
    const scaleBytes = p.dtype === 'FP8_E4M3' ? 4 * Math.ceil((rows * cols) / blockSize) : 0;
    if (p.scales.length !== scaleBytes) throw new Error(`${what}: ${p.dtype} [${rows}, ${cols}] needs ${scaleBytes} bytes of scales but ${p.scales.length} arrived`);
    if (frame.expertIds.length !== 0 && frame.expertIds.length !== 4 * rows) {
      throw new Error(`${what}: ${frame.expertIds.length} bytes of expert ids for ${rows} rows (needs ${4 * rows} or none)`);
    }
  } else if (p.scales.length !== 0 || frame.expertIds.length !== 0) {
    throw new Error(`${what}: scales and expert ids travel in part 0 only`);
  }
  return { key, source: frame.source, part: frame.part, parts, dtype: p.dtype, rows, cols, blockSize, totalBytes, data: p.data, scales: p.scales, expertIds: frame.expertIds };
}
