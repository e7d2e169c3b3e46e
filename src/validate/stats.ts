import { medianOfSorted } from "../math/median.js";
/**
 * Error statistics over absolute relative errors: the median, the 90th percentile (nearest rank: the
 * smallest value with at least 90% of the errors at or below it) and the maximum.
 */
export interface ErrorSummary {
  readonly count: number;
  readonly median: number;
  readonly p90: number;
  readonly max: number;
}

export const EMPTY_SUMMARY: ErrorSummary = { count: 0, median: Number.NaN, p90: Number.NaN, max: Number.NaN };

/** The median of sorted values (src/math/median.ts), under the name this module's callers use. */
export const median = medianOfSorted;

export function nearestRank(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}

/** Summary of relative errors (signed in, absolute out). */
export function summarize(errors: readonly number[]): ErrorSummary {
  if (errors.length === 0) return EMPTY_SUMMARY;
  const abs = errors.map(Math.abs).sort((a, b) => a - b);
  return { count: abs.length, median: median(abs), p90: nearestRank(abs, 0.9), max: abs[abs.length - 1]! };
}

/** Groups values by a key, keeping first-seen order. */
export function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = out.get(k);
    if (list === undefined) out.set(k, [it]);
    else list.push(it);
  }
  return out;
}
