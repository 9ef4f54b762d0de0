/** A placement that cannot work (more workers than experts, an owner out of range, ...). */
export class PlacementError extends Error {
  override readonly name = 'PlacementError';
}

/** The batch cannot be split over the workers (e.g. fewer sequences than workers). */
export class BatchSplitError extends Error {
  override readonly name = 'BatchSplitError';
}
