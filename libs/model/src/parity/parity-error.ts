/** A run could not be compared with the reference (or, from a queued run, it differed beyond tolerance). */
export class ParityError extends Error {
  override readonly name = 'ParityError';
}
