/** Half-open time intervals [start, end) in ms. */
export type Span = readonly [number, number];

/** The union of `spans` as sorted, disjoint spans. */
export function union(spans: Span[]): Span[] {
  const sorted = spans.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export const total = (spans: Span[]): number => spans.reduce((s, [a, b]) => s + (b - a), 0);

/** Length of the part of disjoint sorted `a` not covered by disjoint sorted `b`. */
export function uncovered(a: Span[], b: Span[]): number {
  let length = 0;
  let j = 0;
  for (const [start, end] of a) {
    let cursor = start;
    while (j < b.length && b[j]![1] <= cursor) j++;
    let k = j;
    while (cursor < end && k < b.length && b[k]![0] < end) {
      const [bs, be] = b[k]!;
      if (bs > cursor) length += bs - cursor;
      cursor = Math.max(cursor, be);
      k++;
    }
    if (cursor < end) length += end - cursor;
  }
  return length;
}
