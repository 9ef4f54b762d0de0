/** A global batch of next-token examples: B sequences of L tokens, flattened. */
export interface Batch {
  /** [B·L] token ids; sequence b occupies [b·L, (b+1)·L). */
  inputs: Int32Array;
  /** [B·L] the token following each input. */
  targets: Int32Array;
  /** B. */
  sequences: number;
  /** L. */
  seqLen: number;
}
