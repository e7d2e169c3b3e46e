import { describe, expect, it } from "vitest";
import { acceptanceChecks, formatChecks, TARGETS } from "../../src/validate/checks.js";
import type { PlannerReport } from "../../src/validate/planner.js";
import type { ValidateReport } from "../../src/validate/report.js";
import type { ErrorSummary } from "../../src/validate/stats.js";

const summary = (median: number, p90: number, max: number): ErrorSummary => ({ count: 10, median, p90, max });
const errors = (s: ErrorSummary) => ({ overall: s, bySource: {} });

/** A report with these held-out figures (model, then baseline) and this many memory violations. */
function report(model: ErrorSummary | null, baseline: ErrorSummary, violations = 0, disputed = 0): ValidateReport {
  const violation = { id: "r1", source: "s", violation: "ran out of memory, but predicted to fit", peakGiB: 70, capacityGiB: 80 };
  return {
    compares: "", records: 10, compared: 10, outOfMemoryRecords: 0, skipped: [], calibration: null, rows: [],
    summary: {
      model: errors(summary(0.01, 0.02, 0.03)), prior: errors(summary(0.2, 0.3, 0.4)), baseline: errors(baseline), memory: errors(summary(0, 0, 0)),
      heldOut: model === null ? null : { model: errors(model), baseline: errors(baseline) },
    },
    violations: Array.from({ length: violations }, () => violation),
    disputed: Array.from({ length: disputed }, () => ({ id: "r2", source: "s", disputed: "ran out of memory, but predicted to fit; disputed: a sibling ran", peakGiB: 60, capacityGiB: 80 })),
  };
}

const failing = (rep: ValidateReport, planner?: PlannerReport) => acceptanceChecks(rep, planner).filter((c) => !c.pass).map((c) => c.name);

describe("validate's accuracy checks", () => {
  const baseline = summary(0.3, 0.5, 0.9);

  it("pass at the bounds and fail just past each one, naming which", () => {
    expect(failing(report(summary(TARGETS.median, TARGETS.p90, TARGETS.max), baseline))).toEqual([]);
    expect(failing(report(summary(0.081, 0.1, 0.2), baseline))).toEqual(["held-out median absolute error of throughput"]);
    expect(failing(report(summary(0.05, 0.151, 0.2), baseline))).toEqual(["held-out 90th percentile"]);
    expect(failing(report(summary(0.05, 0.1, 0.301), baseline))).toEqual(["held-out worst record"]);
    expect(failing(report(summary(0.05, 0.1, 0.2), baseline, 2))).toEqual(["published runs predicted to fit, reported out-of-memory runs not to"]);
  });

  it("the model must beat the MFU baseline clearly: at most half its median and 90th percentile", () => {
    expect(failing(report(summary(0.05, 0.1, 0.2), summary(0.09, 0.5, 0.9)))).toEqual(["held-out median against the MFU baseline's"]);
    expect(failing(report(summary(0.05, 0.1, 0.2), summary(0.3, 0.19, 0.9)))).toEqual(["held-out 90th percentile against the MFU baseline's"]);
  });

  it("without held-out figures (no calibration) the held-out checks fail as not computed", () => {
    const checks = acceptanceChecks(report(null, baseline));
    expect(checks.filter((c) => !c.pass)).toHaveLength(5);
    expect(checks.filter((c) => c.value === null)).toHaveLength(5);
    expect(formatChecks(checks).join("\n")).toContain("FAIL  held-out worst record: not computed");
  });

  it("the planner comparison adds a check when it ran", () => {
    const planner = { settings: 10, atLeastAsFast: 9, publishedDoesNotFit: 0, rows: [] };
    expect(failing(report(summary(0.05, 0.1, 0.2), baseline), planner)).toEqual(["planner's best at least as fast as every published configuration"]);
    expect(failing(report(summary(0.05, 0.1, 0.2), baseline), { ...planner, atLeastAsFast: 10 })).toEqual([]);
  });

  it("a miss on a disputed record is listed apart, not counted: the check passes and says so", () => {
    const checks = acceptanceChecks(report(summary(0.05, 0.1, 0.2), baseline, 0, 1));
    expect(checks.every((c) => c.pass)).toBe(true);
    expect(formatChecks(checks)).toContain("  PASS  published runs predicted to fit, reported out-of-memory runs not to: 0 (0 violations; 1 disputed, listed apart)");
    // a violation beside it still fails
    expect(failing(report(summary(0.05, 0.1, 0.2), baseline, 1, 1))).toEqual(["published runs predicted to fit, reported out-of-memory runs not to"]);
  });

  it("prints one line per check and the count that fail", () => {
    const lines = formatChecks(acceptanceChecks(report(summary(0.05, 0.1, 0.35), baseline, 1)));
    expect(lines[0]).toBe("Checks (exit 1 when one fails): 2 of 6 fail");
    expect(lines).toContain("  FAIL  held-out worst record: 35.0% (<= 30%)");
    expect(lines).toContain("  FAIL  published runs predicted to fit, reported out-of-memory runs not to: 1 (0 violations)");
    expect(lines).toContain("  PASS  held-out median against the MFU baseline's: 5.0% (<= 50% of the baseline's 30%)");
  });
});
