import type { PlannerReport } from "./planner.js";
import type { ValidateReport } from "./report.js";

/** One pass/fail check of `meshplan validate`: the figure it reads, the bound it holds to, and whether it holds. */
export interface Check {
  readonly name: string;
  /** The figure checked (a fraction for errors, a count otherwise); null when it cannot be computed. */
  readonly value: number | null;
  readonly bound: string;
  readonly pass: boolean;
}

/**
 * The accuracy targets the held-out report must meet (issue 7, "Must show"): absolute relative error of
 * throughput, each source predicted by the layer fitted on the others. The model must also beat the
 * simplest baseline (one MFU per GPU type, fitted the same way) clearly: at most this share of its
 * median and 90th percentile.
 */
export const TARGETS = { median: 0.08, p90: 0.15, max: 0.3, ofBaseline: 0.5 } as const;

const percent = (x: number) => `${Math.round(100 * x)}%`;

/**
 * The checks of a validate report (and of the planner comparison, when it ran). A held-out figure that
 * cannot be computed (no calibration file, so no held-out fits) fails its check: nothing shows it holds.
 */
export function acceptanceChecks(rep: ValidateReport, planner?: PlannerReport): Check[] {
  const held = rep.summary.heldOut;
  const model = held?.model.overall;
  const baseline = held?.baseline.overall;
  const upTo = (name: string, value: number | undefined, bound: number): Check => {
    const v = value === undefined || Number.isNaN(value) ? null : value;
    return { name, value: v, bound: `<= ${percent(bound)}`, pass: v !== null && v <= bound };
  };
  const beats = (name: string, value: number | undefined, base: number | undefined): Check => {
    const ok = value !== undefined && base !== undefined && !Number.isNaN(value) && !Number.isNaN(base);
    return { name, value: ok ? value : null, bound: ok ? `<= ${percent(TARGETS.ofBaseline)} of the baseline's ${percent(base)}` : "<= half the baseline's", pass: ok && value <= TARGETS.ofBaseline * base };
  };
  const checks = [
    upTo("held-out median absolute error of throughput", model?.median, TARGETS.median),
    upTo("held-out 90th percentile", model?.p90, TARGETS.p90),
    upTo("held-out worst record", model?.max, TARGETS.max),
    beats("held-out median against the MFU baseline's", model?.median, baseline?.median),
    beats("held-out 90th percentile against the MFU baseline's", model?.p90, baseline?.p90),
    {
      name: "published runs predicted to fit, reported out-of-memory runs not to", value: rep.violations.length,
      bound: rep.disputed.length === 0 ? "0 violations" : `0 violations; ${rep.disputed.length} disputed, listed apart`, pass: rep.violations.length === 0,
    },
  ];
  if (planner !== undefined) {
    const behind = planner.settings - planner.atLeastAsFast;
    checks.push({ name: "planner's best at least as fast as every published configuration", value: behind, bound: "0 settings behind", pass: behind === 0 });
  }
  return checks;
}

/** The checks as text lines: PASS or FAIL, the figure and its bound. */
export function formatChecks(checks: readonly Check[]): string[] {
  const shown = (c: Check) => (c.value === null ? "not computed" : c.bound.startsWith("0 ") ? String(c.value) : `${(100 * c.value).toFixed(1)}%`);
  const failed = checks.filter((c) => !c.pass).length;
  return [
    `Checks (exit 1 when one fails): ${failed === 0 ? "all pass" : `${failed} of ${checks.length} fail`}`,
    ...checks.map((c) => `  ${c.pass ? "PASS" : "FAIL"}  ${c.name}: ${shown(c)} (${c.bound})`),
  ];
}
