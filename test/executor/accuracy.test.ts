import { describe, expect, it } from "vitest";
import { summarizeTiming, timingRow, type TimingRow } from "../../src/executor/measure/accuracy.js";
import type { ExecuteReport } from "../../src/executor/measure/report.js";

function report(pp: number, predicted: number, measured: number, predictedBubble: number, measuredBubble: number): ExecuteReport {
  return {
    plan: { pp },
    predicted: { time: { stepSeconds: predicted }, pipeline: { bubbleFraction: predictedBubble } },
    measured: { stepSeconds: measured, bubbleFraction: measuredBubble },
  } as unknown as ExecuteReport;
}

describe("the executor's timing check (accuracy.ts)", () => {
  it("a row: the step's error relative to the prediction, and the bubble's difference for pipelined plans only", () => {
    const pp = timingRow("1", 2, "pp2", report(2, 0.04, 0.05, 0.15, 0.12));
    expect(pp.stepError).toBeCloseTo(0.25, 12);
    expect(pp.bubbleError).toBeCloseTo(-0.03, 12);
    const dp = timingRow("1", 2, "dp2", report(1, 0.04, 0.03, 0, 0));
    expect(dp.stepError).toBeCloseTo(-0.25, 12);
    expect(dp.bubbleError).toBeUndefined();
  });

  it("counts steps within 25% and bubbles within 0.05, with the median and largest errors", () => {
    const row = (stepError: number, bubbleError?: number): TimingRow => ({
      calibration: "1", round: 1, plan: "x", predictedStepSeconds: 1, measuredStepSeconds: 1 + stepError, stepError, ...(bubbleError === undefined ? {} : { bubbleError }),
    });
    const s = summarizeTiming([row(0.1), row(-0.3), row(0.05, 0.02), row(-0.2, -0.07), row(0.25)]);
    expect(s.steps).toEqual({ count: 5, within: 4, medianAbsError: 0.2, maxAbsError: 0.3, intervals: 0, inInterval: 0 });
    expect(s.bubbles).toEqual({ count: 2, within: 1, maxAbsError: 0.07, intervals: 0, inInterval: 0 });
    expect(summarizeTiming([]).steps.count).toBe(0);
  });

  it("says whether each prediction lies inside the interval of the run's median, and counts those that do", () => {
    const withIntervals = (r: ExecuteReport, step: [number, number], bubble?: [number, number]) => ({
      ...r,
      measured: {
        ...r.measured,
        stepSecondsInterval: { low: step[0], high: step[1], confidence: 0.961 },
        ...(bubble === undefined ? {} : { bubbleFractionInterval: { low: bubble[0], high: bubble[1], confidence: 0.961 } }),
      },
    }) as ExecuteReport;
    // predicted 0.04 s and bubble 0.15: inside [0.035, 0.045] (the ends count) and outside [0.16, 0.2]
    const a = timingRow("1", 1, "pp2", withIntervals(report(2, 0.04, 0.042, 0.15, 0.18), [0.035, 0.04], [0.16, 0.2]));
    expect([a.stepInInterval, a.bubbleInInterval]).toEqual([true, false]);
    const b = timingRow("1", 1, "dp2", withIntervals(report(1, 0.04, 0.05, 0, 0), [0.045, 0.055]));
    expect([b.stepInInterval, b.bubbleInInterval]).toEqual([false, undefined]);
    // One timed step: no interval, so neither counts.
    const c = timingRow("1", 1, "pp2", report(2, 0.04, 0.05, 0.15, 0.12));
    expect([c.stepInInterval, c.bubbleInInterval]).toEqual([undefined, undefined]);
    const s = summarizeTiming([a, b, c]);
    expect([s.steps.intervals, s.steps.inInterval, s.bubbles.intervals, s.bubbles.inInterval]).toEqual([2, 1, 1, 0]);
  });
});
