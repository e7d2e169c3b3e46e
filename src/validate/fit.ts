import { quickScore } from "../planner/cost/estimate.js";
import { calibratedClusters, IDENTITY, SCALE_NAMES, type CalibrationScales, type Fold } from "./calibration.js";
import { minimize } from "../math/nelder-mead.js";
import type { PreparedCase } from "./predict.js";
import { groupBy } from "./stats.js";

/**
 * Fitting the calibration layer without overfitting: seven scale factors (src/validate/calibration.ts) shared
 * by every GPU, fitted by Nelder-Mead in log space to the mean absolute log error of throughput,
 * each source weighted equally (a source with 200 rows counts as much as one with 3), with a weak
 * quadratic pull of every log scale towards 0 (the sourced prior). Held out by source: the fold for a
 * source is fitted on the records of every other source only (`foldSplit`).
 */
export const PRIOR_WEIGHT = 0.01;
const LOG_BOUND = Math.log(20);

/** Records of a held-out fold: the training set never contains a record of `source`. */
export function foldSplit(cases: readonly PreparedCase[], source: string): { train: PreparedCase[]; test: PreparedCase[] } {
  return { train: cases.filter((c) => c.case.source !== source), test: cases.filter((c) => c.case.source === source) };
}

/** Cases with a throughput to compare (published runs with a measurement). */
export function comparable(cases: readonly PreparedCase[]): PreparedCase[] {
  return cases.filter((c) => c.case.ran && c.case.measurement !== undefined);
}

export function scalesFromLog(x: readonly number[]): CalibrationScales {
  const out: Record<string, number> = {};
  SCALE_NAMES.forEach((k, i) => (out[k] = Math.exp(Math.max(-LOG_BOUND, Math.min(LOG_BOUND, x[i] ?? 0)))));
  return out as CalibrationScales;
}

export function logOfScales(s: CalibrationScales): number[] {
  return SCALE_NAMES.map((k) => Math.log(s[k]));
}

/** Predicted over measured throughput of each case under a calibration. */
export function throughputRatios(cases: readonly PreparedCase[], s: CalibrationScales): number[] {
  const calibrated = calibratedClusters(s);
  return cases.map((p) => {
    const predicted = quickScore(p.case.model, { ...p.shape, spec: calibrated(p.shape.spec) }, p.plan).tokensPerSecond / p.case.gpus;
    return predicted / p.case.measurement!.tokensPerSecondPerGpu;
  });
}

/** The fit's objective: mean over sources of the mean |log(predicted / measured)|, plus the prior's pull. */
export function objective(cases: readonly PreparedCase[], s: CalibrationScales): number {
  const ratios = throughputRatios(cases, s);
  const bySource = groupBy(cases.map((c, i) => ({ source: c.case.source, e: Math.abs(Math.log(ratios[i]!)) })), (r) => r.source);
  let total = 0;
  for (const list of bySource.values()) total += list.reduce((a, r) => a + r.e, 0) / list.length;
  const fit = bySource.size === 0 ? 0 : total / bySource.size;
  return fit + PRIOR_WEIGHT * logOfScales(s).reduce((a, v) => a + v * v, 0);
}

export interface FitOptions {
  readonly maxEvaluations: number;
}

export const DEFAULT_FIT: FitOptions = { maxEvaluations: 600 };

export function fitScales(train: readonly PreparedCase[], o: FitOptions = DEFAULT_FIT): { scales: CalibrationScales; objective: number; evaluations: number } {
  const cases = comparable(train);
  const f = (x: readonly number[]) => objective(cases, scalesFromLog(x));
  // Restarted from its own optimum with a smaller simplex, a standard guard against a collapsed simplex.
  let r = minimize(f, logOfScales(IDENTITY), { step: 0.3, maxEvaluations: o.maxEvaluations / 2, tolerance: 1e-7 });
  let evaluations = r.evaluations;
  for (const step of [0.1, 0.03]) {
    r = minimize(f, r.x, { step, maxEvaluations: o.maxEvaluations / 4, tolerance: 1e-7 });
    evaluations += r.evaluations;
  }
  return { scales: scalesFromLog(r.x), objective: r.value, evaluations };
}

/** One fold per source that has a compared record: scales fitted on every other source. */
export function heldOutFolds(cases: readonly PreparedCase[], o: FitOptions = DEFAULT_FIT, onFold?: (source: string) => void): Fold[] {
  const sources = [...new Set(comparable(cases).map((c) => c.case.source))];
  return sources.map((source) => {
    onFold?.(source);
    const { train } = foldSplit(comparable(cases), source);
    return { heldOut: source, scales: fitScales(train, o).scales, trainedOn: [...new Set(train.map((c) => c.case.source))] };
  });
}
