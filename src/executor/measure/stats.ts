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

/** The sum of samples (0 for none). */
export function total(xs: readonly number[]): number {
  return xs.reduce((a, x) => a + x, 0);
}

/**
 * The pooled standard deviation of log samples about each group's own mean: sqrt(sum of squared deviations
 * / (samples - groups)), the usual pooled estimate (each group's mean costs one degree of freedom). Groups
 * of fewer than two samples add nothing. 0 when no group has two.
 */
export function pooledLogSd(groups: readonly (readonly number[])[]): number {
  let squares = 0;
  let freedom = 0;
  for (const g of groups) {
    if (g.length < 2) continue;
    const logs = g.map((x) => Math.log(x));
    const mean = logs.reduce((a, x) => a + x, 0) / logs.length;
    squares += logs.reduce((a, x) => a + (x - mean) ** 2, 0);
    freedom += logs.length - 1;
  }
  return freedom > 0 ? Math.sqrt(squares / freedom) : 0;
}
