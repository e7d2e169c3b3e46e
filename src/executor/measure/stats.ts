/**
 * The upper median of timed samples: the middle value of an odd count, the upper of the two middle values
 * of an even one. Always a value that was observed, so one slow outlier in two samples cannot halve it.
 * 0 for no samples (a probe that never ran measured nothing). Used wherever the executor, `meshplan
 * calibrate` and the benchmarks reduce repeated timings to one figure.
 */
export function upperMedian(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}
