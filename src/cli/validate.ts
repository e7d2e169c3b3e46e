import { builtinNames, clusterLoader, loadModel } from "./catalog.js";
import type { ParsedArgs } from "./args.js";
import type { Io } from "./io.js";
import type { CalibrationFile } from "../validate/calibration.js";
import { acceptanceChecks, formatChecks } from "../validate/checks.js";
import { CALIBRATION_FILE, readCalibration, readMeasurements } from "../validate/files.js";
import { RecordError, type MeasurementRecord } from "../validate/records.js";
import { plannerReport, type PlannerReport } from "../validate/planner.js";
import { prepareRecords } from "../validate/predict.js";
import { buildReport, type Errors, type ReportRow, type ValidateReport } from "../validate/report.js";
import { groupBy, type ErrorSummary } from "../validate/stats.js";

/**
 * `meshplan validate [--json]`: predictions against the published runs of models/measurements/, with the
 * calibration layer of models/hardware/calibration.json when it exists, then the accuracy checks
 * (validate/checks.ts). Exit 0 when every check passes, 1 when one fails, 2 when the measurements or the
 * calibration file cannot be read.
 */
const UNITS = { "iteration-seconds": "s/iter", "tokens-per-second-per-gpu": "tok/s/GPU", "tflops-per-gpu": "TFLOP/s" } as const;

const pct = (x: number | null) => (x === null || Number.isNaN(x) ? "-" : `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%`);
const abs = (x: number) => (Number.isNaN(x) ? "-" : `${(100 * x).toFixed(1)}%`);
const num = (x: number) => (x >= 1000 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(3));

function summaryCell(s: ErrorSummary | undefined): string {
  return s === undefined || s.count === 0 ? "-" : `${abs(s.median)} / ${abs(s.p90)} / ${abs(s.max)}`;
}

function row(r: ReportRow): string {
  const unit = r.measured === null ? "" : UNITS[r.measured.kind];
  const measured = r.measured === null ? (r.ran ? "-" : "OOM") : `${num(r.measured.value)} ${unit}`;
  const predicted = r.predicted === null ? (r.fits ? "fits" : "no fit") : `${num(r.predicted)} ${unit}`;
  // "!" a memory violation, "?" a miss on a disputed record (listed below the table)
  const mem = `${r.peakGiB.toFixed(1)}/${r.capacityGiB.toFixed(0)} GiB${r.violation !== null ? " !" : r.disputed !== null ? " ?" : ""}`;
  return [r.id.padEnd(6), r.source.slice(0, 22).padEnd(22), r.model.slice(0, 22).padEnd(22), String(r.gpus).padStart(5), r.plan.padEnd(46),
    measured.padStart(17), predicted.padStart(17), pct(r.error).padStart(8), pct(r.heldOutError).padStart(8), pct(r.heldOutBaselineError).padStart(8), pct(r.priorError).padStart(8), mem.padStart(16)].join("  ");
}

function summaryTable(rep: ValidateReport): string[] {
  const s = rep.summary;
  const sources = Object.keys(s.model.bySource);
  const line = (name: string, pickS: (e: Errors) => ErrorSummary | undefined, n: number) =>
    [name.padEnd(28), String(n).padStart(4), summaryCell(pickS(s.model)).padStart(24), summaryCell(s.heldOut === null ? undefined : pickS(s.heldOut.model)).padStart(24),
      summaryCell(s.heldOut === null ? undefined : pickS(s.heldOut.baseline)).padStart(24), summaryCell(pickS(s.baseline)).padStart(24), summaryCell(pickS(s.prior)).padStart(24)].join("  ");
  return [
    "Absolute relative error of throughput, median / p90 / max:",
    ["source".padEnd(28), "n".padStart(4), "model, calibrated".padStart(24), "model, held out".padStart(24), "MFU baseline, held out".padStart(24),
      "MFU baseline, in-sample".padStart(24), "model, priors only".padStart(24)].join("  "),
    ...sources.map((src) => line(src, (e) => e.bySource[src], s.model.bySource[src]!.count)),
    line("all", (e) => e.overall, s.model.overall.count),
    "",
    "'calibrated' uses the layer fitted on every source (in-sample); 'held out' predicts each source with the layer",
    "fitted on the other sources only; the MFU baseline is one MFU per GPU type (and fp8), fitted the same two ways.",
  ];
}

export function formatReport(rep: ValidateReport, calibrationFile: string): string {
  const sources = new Set(rep.rows.map((r) => r.source)).size;
  const cal = rep.calibration;
  const lines = [
    `meshplan validate: ${rep.records} published records; ${rep.compared} compared, ${rep.outOfMemoryRecords} out-of-memory checks (${sources} sources), ${rep.skipped.length} skipped`,
    `Compares: ${rep.compares}.`,
    cal === null
      ? `Calibration: none (${calibrationFile} not found): priors only, no held-out figures`
      : `Calibration: ${calibrationFile}, fitted ${cal.fittedAt}: ${Object.entries(cal.scales).map(([k, v]) => `${k} x${v.toFixed(3)}`).join(", ")}; ${cal.folds} held-out folds`,
    "Columns: error = calibrated model (JSON error); held-out = fitted without the record's source (heldOutError); " +
      "base h-o = the MFU baseline, held out (heldOutBaselineError); prior = priors only (priorError)",
    "",
    ["id".padEnd(6), "source".padEnd(22), "model".padEnd(22), "GPUs".padStart(5), "plan".padEnd(46), "measured".padStart(17), "predicted".padStart(17),
      "error".padStart(8), "held-out".padStart(8), "base h-o".padStart(8), "prior".padStart(8), "memory".padStart(16)].join("  "),
    ...rep.rows.map(row),
    "",
    ...summaryTable(rep),
    "",
    `Memory against published peaks (${rep.summary.memory.overall.count} records: BLOOM's nvidia-smi "GB", torchtitan's GiB): ` +
      Object.entries(rep.summary.memory.bySource).map(([src, e]) => `${src} median ${abs(e.median)}, max ${abs(e.max)}`).join("; "),
    rep.violations.length === 0
      ? `Memory: every published run is predicted to fit and every reported out-of-memory run not to${rep.disputed.length === 0 ? "" : ", the disputed records below apart"}.`
      : `Memory violations (${rep.violations.length}):`,
    ...rep.violations.map((v) => `  ${v.id} ${v.source}: ${v.violation} (predicted ${v.peakGiB.toFixed(1)} GiB of ${v.capacityGiB.toFixed(1)})`),
    ...(rep.disputed.length === 0 ? [] : [`Memory misses on disputed records, not counted (${rep.disputed.length}):`]),
    ...rep.disputed.map((v) => `  ${v.id} ${v.source}: predicted ${v.peakGiB.toFixed(1)} GiB of ${v.capacityGiB.toFixed(1)}: ${v.disputed}`),
    "",
    `Skipped (${rep.skipped.length}):`,
    ...[...groupBy(rep.skipped, (s) => s.reason)].map(([reason, list]) => `  ${String(list.length).padStart(3)}  ${reason} (${list.slice(0, 4).map((s) => s.id).join(", ")}${list.length > 4 ? ", ..." : ""})`),
  ];
  return lines.join("\n");
}

/** Where the data lives; tests point these elsewhere. */
export interface ValidatePaths {
  readonly measurements?: string;
  readonly calibration?: string;
}

function loadInputs(io: Io, paths: ValidatePaths): { records: MeasurementRecord[]; calibration: CalibrationFile | undefined } | undefined {
  let records: MeasurementRecord[];
  try {
    records = readMeasurements(paths.measurements);
  } catch (e) {
    if (!(e instanceof RecordError)) throw e;
    io.err(`meshplan: cannot read the measurements: ${e.message}`);
    return undefined;
  }
  const file = paths.calibration ?? CALIBRATION_FILE();
  try {
    return { records, calibration: readCalibration(file) };
  } catch (e) {
    io.err(`meshplan: cannot read the calibration layer: ${(e as Error).message}`);
    return undefined;
  }
}

export function validateCommand(args: ParsedArgs, io: Io, paths: ValidatePaths = {}): number {
  const inputs = loadInputs(io, paths);
  if (inputs === undefined) return 2;
  const records = prepareRecords(inputs.records, builtinNames("model").map(loadModel), clusterLoader());
  const report = buildReport(records, inputs.calibration);
  const planner = args.flags.planner === true
    ? plannerReport(records, inputs.calibration, (done, total) => {
      if (done % 50 === 0 || done === total) io.err(`validate: planner ${done}/${total} settings`);
    })
    : undefined;
  const checks = acceptanceChecks(report, planner);
  if (args.flags.json === true) io.out(JSON.stringify({ ...report, ...(planner === undefined ? {} : { planner }), checks }, null, 2));
  else io.out([formatReport(report, "models/hardware/calibration.json"), ...(planner === undefined ? [] : ["", formatPlanner(planner)]), "", ...formatChecks(checks)].join("\n"));
  // The contract's exit codes (design brief section 5): 1 for a failed check.
  return checks.every((c) => c.pass) ? 0 : 1;
}

const tok = (x: number) => (x >= 1000 ? x.toFixed(0) : x.toFixed(1));

/** The planner against the published settings: the largest gains, and every setting where it is not at least as fast. */
export function formatPlanner(rep: PlannerReport): string {
  const withBest = rep.rows.filter((r) => r.gain !== null);
  const behind = rep.rows.filter((r) => r.gain === null || r.gain < -1e-6);
  const largest = [...withBest].sort((a, b) => b.gain! - a.gain!).slice(0, 10);
  const shown = [...largest, ...behind];
  const cells = (r: PlannerReport["rows"][number]) => [
    r.source, r.model, String(r.gpus), r.published.plan, tok(r.published.tokensPerSecondPerGpu), "->",
    r.best?.plan ?? "none fits", r.best === null ? "" : tok(r.best.tokensPerSecondPerGpu), pct(r.gain),
  ];
  const head = ["source", "model", "GPUs", "fastest published plan", "tok/s/GPU", "", "planner's best", "tok/s/GPU", "gain"];
  const right = new Set([2, 4, 7, 8]);
  const widths = head.map((h, c) => Math.max(h.length, ...shown.map((r) => cells(r)[c]!.length)));
  const fmt = (xs: string[]) => `  ${xs.map((x, c) => (right.has(c) ? x.padStart(widths[c]!) : x.padEnd(widths[c]!))).join("  ").trimEnd()}`;
  const line = (r: PlannerReport["rows"][number]) => fmt(cells(r));
  return [
    `Planner on the published settings (same model, cluster, GPUs, batch, sequence, precision and software; calibrated; analytic): ` +
      `the best plan is predicted at least as fast as every published configuration in ${rep.atLeastAsFast} of ${rep.settings} settings` +
      (rep.publishedDoesNotFit > 0 ? ` (${rep.publishedDoesNotFit} published configuration${rep.publishedDoesNotFit === 1 ? " is" : "s are"} predicted not to fit, so the planner cannot choose ${rep.publishedDoesNotFit === 1 ? "it" : "them"})` : ""),
    "Largest gains:",
    fmt(head),
    ...largest.map(line),
    ...(behind.length === 0 ? [] : ["Not at least as fast:", ...behind.map((r) => `${line(r)}${r.published.fits ? "" : "  (the published plan is predicted not to fit)"}`)]),
  ].join("\n");
}
