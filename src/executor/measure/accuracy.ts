import type { ExecuteReport } from "./report.js";
import { upperMedian, type MedianInterval } from "./stats.js";

/**
 * The executor's timing check (issue: "on a calibrated profile ... the measured step time is within 25% of
 * the simulator's prediction, and the measured bubble fraction of a pipeline run within 0.05"), as counts
 * over repeated executions: one row per execution, the summary over all of them. bench/executor-timing.ts
 * runs the calibrations and executions; this file only does the arithmetic.
 */
export const STEP_TOLERANCE = 0.25;
export const BUBBLE_TOLERANCE = 0.05;

export interface TimingRow {
  /** Which calibration and round, and the plan (e.g. "tp2"). */
  readonly calibration: string;
  readonly round: number;
  readonly plan: string;
  readonly predictedStepSeconds: number;
  readonly measuredStepSeconds: number;
  /** (measured - predicted) / predicted. */
  readonly stepError: number;
  /** measured - predicted, for pipelined plans only. */
  readonly bubbleError?: number;
  /**
   * Whether the prediction lies inside the interval that holds the run's median with the probability the
   * report gives (report.ts stepSecondsInterval; absent with one timed step): outside it, the prediction
   * differs from the run by more than the run's own step-to-step spread.
   */
  readonly stepInInterval?: boolean;
  readonly bubbleInInterval?: boolean;
}

/** Whether x lies in the interval; undefined without one. */
function inside(x: number, i: MedianInterval | undefined): boolean | undefined {
  return i === undefined ? undefined : i.low <= x && x <= i.high;
}

export function timingRow(calibration: string, round: number, plan: string, r: ExecuteReport): TimingRow {
  const predicted = r.predicted.time.stepSeconds;
  const measured = r.measured.stepSeconds;
  const step = inside(predicted, r.measured.stepSecondsInterval);
  const bubble = inside(r.predicted.pipeline.bubbleFraction, r.measured.bubbleFractionInterval);
  return {
    calibration, round, plan, predictedStepSeconds: predicted, measuredStepSeconds: measured, stepError: (measured - predicted) / predicted,
    ...(step === undefined ? {} : { stepInInterval: step }),
    ...(r.plan.pp > 1 ? { bubbleError: r.measured.bubbleFraction - r.predicted.pipeline.bubbleFraction } : {}),
    ...(r.plan.pp > 1 && bubble !== undefined ? { bubbleInInterval: bubble } : {}),
  };
}

export interface TimingSummary {
  /** inInterval: of the rows with an interval (`intervals` of them), those whose prediction lies inside it. */
  readonly steps: { readonly count: number; readonly within: number; readonly medianAbsError: number; readonly maxAbsError: number; readonly intervals: number; readonly inInterval: number };
  readonly bubbles: { readonly count: number; readonly within: number; readonly maxAbsError: number; readonly intervals: number; readonly inInterval: number };
}

export function summarizeTiming(rows: readonly TimingRow[]): TimingSummary {
  const steps = rows.map((r) => Math.abs(r.stepError));
  const bubbles = rows.flatMap((r) => (r.bubbleError === undefined ? [] : [Math.abs(r.bubbleError)]));
  const held = (flags: readonly (boolean | undefined)[]) => {
    const given = flags.filter((f) => f !== undefined);
    return { intervals: given.length, inInterval: given.filter((f) => f).length };
  };
  return {
    steps: { count: steps.length, within: steps.filter((e) => e <= STEP_TOLERANCE).length, medianAbsError: upperMedian(steps), maxAbsError: largest(steps), ...held(rows.map((r) => r.stepInInterval)) },
    bubbles: { count: bubbles.length, within: bubbles.filter((e) => e <= BUBBLE_TOLERANCE).length, maxAbsError: largest(bubbles), ...held(rows.map((r) => r.bubbleInInterval)) },
  };
}

/** The largest of the errors; 0 for none. */
function largest(xs: readonly number[]): number {
  return xs.reduce((a, x) => Math.max(a, x), 0);
}
