import { performance } from "node:perf_hooks";
import { upperMedian as median } from "../src/executor/measure/stats.js";

/** One line of `npm run bench`: a target, the measured median and how the two compare. */
export interface BenchRow {
  readonly name: string;
  readonly target: string;
  readonly median: string;
  /** target / measured (>= 1 meets a time target), or a rate. */
  readonly ratio: string;
}

export { median };

/** Median seconds per call of `fn`, from `samples` samples of `batch` calls each, after one warm-up batch. */
export function timePerCall(fn: () => void, batch: number, samples: number): number {
  for (let i = 0; i < batch; i++) fn();
  const per: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    per.push((performance.now() - t0) / 1e3 / batch);
  }
  return median(per);
}

export function formatSeconds(s: number): string {
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(1)} ms`;
  return `${(s * 1e6).toFixed(2)} us`;
}
