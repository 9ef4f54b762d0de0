/** The codecs view typed arrays as little-endian bytes; refuse to run where that is false. */
const probe = new Uint8Array(new Uint16Array([1]).buffer);
if (probe[0] !== 1) throw new Error('libs/comm codecs need a little-endian host; this one is big-endian');

/**
 * `bytes` as an aligned typed-array-ready buffer region: the same memory when `bytes` starts at a
 * multiple of `align`, otherwise a copy. Returns the ArrayBuffer and byte offset to view.
 */
export function alignedRegion(bytes: Uint8Array, align: number): { buffer: ArrayBuffer; byteOffset: number } {
  if (bytes.byteOffset % align === 0 && bytes.buffer instanceof ArrayBuffer) {
    return { buffer: bytes.buffer, byteOffset: bytes.byteOffset };
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return { buffer: copy.buffer, byteOffset: 0 };
}

/** Float32 values of `bytes` (LE), a view when aligned, else a copy. `bytes.byteLength` % 4 must be 0. */
export function float32View(bytes: Uint8Array): Float32Array {
  const { buffer, byteOffset } = alignedRegion(bytes, 4);
  return new Float32Array(buffer, byteOffset, bytes.byteLength / 4);
}

/** Int32 values of `bytes` (LE), a view when aligned, else a copy. */
export function int32View(bytes: Uint8Array): Int32Array {
  const { buffer, byteOffset } = alignedRegion(bytes, 4);
  return new Int32Array(buffer, byteOffset, bytes.byteLength / 4);
}

/** Uint16 values of `bytes` (LE), a view when aligned, else a copy. */
export function uint16View(bytes: Uint8Array): Uint16Array {
  const { buffer, byteOffset } = alignedRegion(bytes, 2);
  return new Uint16Array(buffer, byteOffset, bytes.byteLength / 2);
}

/** The bytes of a typed array (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
