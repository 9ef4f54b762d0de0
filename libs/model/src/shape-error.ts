/**
 * A tensor, index list or batch whose shape does not fit the operation. The message names the
 * operation, the shapes it got, and the size that was expected.
 */
export class ShapeError extends Error {
  override readonly name = 'ShapeError';
}
