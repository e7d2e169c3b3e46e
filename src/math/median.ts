/**
 * The median of values already sorted ascending: the middle value of an odd count, the mean of the two
 * middle values of an even one; NaN for none. Pure.
 */
export function medianOfSorted(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The median of values in any order (medianOfSorted of a sorted copy). */
export function median(xs: readonly number[]): number {
  return medianOfSorted([...xs].sort((a, b) => a - b));
}
