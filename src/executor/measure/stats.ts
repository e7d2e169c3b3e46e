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

/** The arithmetic mean of samples (NaN for none). */
export function mean(xs: readonly number[]): number {
  return total(xs) / xs.length;
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
    const m = mean(logs);
    squares += total(logs.map((x) => (x - m) ** 2));
    freedom += logs.length - 1;
  }
  return freedom > 0 ? Math.sqrt(squares / freedom) : 0;
}

/** The standard normal distribution function, by Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/**
 * The mean of the largest of m independent standard normals, E = integral of x m phi(x) Phi(x)^(m-1) dx
 * (midpoint rule over [-8, 8]; 0 for m = 1, 1/sqrt(pi) = 0.5642 for m = 2, 1.0294 for m = 4).
 */
export function expectedMaxOfNormals(m: number): number {
  if (m <= 1) return 0;
  const step = 1e-3;
  let sum = 0;
  for (let x = -8 + step / 2; x < 8; x += step) sum += x * m * Math.exp(-(x * x) / 2) * normalCdf(x) ** (m - 1);
  return (sum * step) / Math.sqrt(2 * Math.PI);
}

/** Least squares y = a + b x. */
export function lineFit(xs: readonly number[], ys: readonly number[]): { a: number; b: number } {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  xs.forEach((x, i) => {
    sxy += (x - mx) * (ys[i]! - my);
    sxx += (x - mx) ** 2;
  });
  const b = sxx === 0 ? 0 : sxy / sxx;
  return { a: my - b * mx, b };
}

/**
 * A fixed part and a part per unit through times at several sizes (the least-squares line): where noise
 * made the slope flat or the intercept negative, the largest size's time is all per unit.
 */
export function fixedAndPerUnit(units: readonly number[], seconds: readonly number[]): { fixedSeconds: number; secondsPerUnit: number } {
  const line = lineFit(units, seconds);
  if (line.b > 0 && line.a >= 0) return { fixedSeconds: line.a, secondsPerUnit: line.b };
  const last = units.length - 1;
  return { fixedSeconds: 0, secondsPerUnit: seconds[last]! / units[last]! };
}

/** A kind of pass priced as the cost model counts its bytes: a fixed time per pass and a streaming rate. */
export interface PassCost {
  /** Fixed seconds per pass (forward or backward); the cost model splits the measured pair evenly. */
  readonly overheadSeconds: number;
  /** The cost model's bytes per second. */
  readonly bytesPerSecond: number;
}

/** A PassCost with the points it was fitted to: each shape's bytes and seconds of a forward and a backward together. */
export type MeasuredPassCost = PassCost & { readonly measured: readonly { readonly shape: string; readonly bytes: number; readonly seconds: number }[] };

/**
 * A forward and a backward pass together, timed at several sizes against the cost model's bytes of both:
 * half the line's intercept per pass and its slope's rate (fixedAndPerUnit, the points taken by size).
 */
export function passCostFrom(bytes: readonly number[], seconds: readonly number[]): PassCost {
  const order = bytes.map((_, i) => i).sort((i, j) => bytes[i]! - bytes[j]!);
  const c = fixedAndPerUnit(order.map((i) => bytes[i]!), order.map((i) => seconds[i]!));
  return { overheadSeconds: c.fixedSeconds / 2, bytesPerSecond: 1 / c.secondsPerUnit };
}

/** An interval that holds the median with probability `confidence` (medianInterval). */
export interface MedianInterval {
  readonly low: number;
  readonly high: number;
  readonly confidence: number;
}

/**
 * A distribution-free confidence interval for the median of the population the samples come from: the
 * order statistics x(k) and x(n + 1 - k) (1-based, sorted), which hold the median between them with
 * probability 1 - 2 P(Binomial(n, 1/2) <= k - 1), whatever the distribution, for independent samples
 * (the interval of the sign test, as in Lehmann, Nonparametrics: Statistical Methods Based on Ranks). k is the
 * largest whose coverage reaches `confidence`; with too few samples for that (fewer than 6 at 0.95), the
 * whole range and its smaller coverage (n = 5: 0.9375). `confidence` is the coverage achieved, which the
 * discrete order statistics make at least the one asked for (12 samples at 0.95: x(3) to x(10), 0.961).
 * Undefined for fewer than 2 samples.
 */
export function medianInterval(xs: readonly number[], confidence = 0.95): MedianInterval | undefined {
  const n = xs.length;
  if (n < 2) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  // 1 - 2 P(Binomial(n, 1/2) <= k - 1), the terms by C(n, j) = C(n, j - 1) (n - j + 1) / j.
  const coverage = (k: number) => {
    let term = 0.5 ** n;
    let below = term;
    for (let j = 1; j <= k - 1; j++) {
      term = (term * (n - j + 1)) / j;
      below += term;
    }
    return 1 - 2 * below;
  };
  let k = 1;
  while (k + 1 <= Math.floor(n / 2) && coverage(k + 1) >= confidence) k++;
  return { low: s[k - 1]!, high: s[n - k]!, confidence: coverage(k) };
}
