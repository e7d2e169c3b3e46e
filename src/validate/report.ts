import { quickScore } from "../planner/cost/estimate.js";
import { baselineTokensPerSecondPerGpu, fitBaseline } from "./baseline.js";
import { calibratedClusters, IDENTITY, type CalibrationFile, type CalibrationScales } from "./calibration.js";
import type { Skipped } from "./cases.js";
import type { MeasureKind } from "./conventions.js";
import { comparable, foldSplit, throughputRatios } from "./fit.js";
import { predictCase, type PreparedCase, type PreparedRecords } from "./predict.js";
import { groupBy, summarize, type ErrorSummary } from "./stats.js";

/** What `meshplan validate` reports (its --json output). Pure: built from records, built-ins and the calibration. */
export const COMPARES =
  "throughput of each published run against meshplan's prediction for exactly that configuration, in the " +
  "record's own unit (seconds per iteration, tokens/s per GPU, or TFLOP/s per GPU counted the source's way: " +
  "model or hardware FLOPs, with or without recompute, attention non-causal, as models/measurements/README.md " +
  "lists); relative error = predicted / measured throughput - 1, the same in every unit";

export interface ReportRow {
  readonly id: string;
  readonly source: string;
  readonly model: string;
  readonly cluster: string;
  readonly gpus: number;
  readonly plan: string;
  readonly measured: { readonly kind: MeasureKind; readonly value: number; readonly compares: string } | null;
  /** The cost model with the calibration layer, in the measured unit. */
  readonly predicted: number | null;
  readonly error: number | null;
  /** The cost model on the priors alone (no calibration). */
  readonly priorError: number | null;
  /** The cost model calibrated without this record's source (the held-out fold). */
  readonly heldOutError: number | null;
  readonly baselineError: number | null;
  readonly heldOutBaselineError: number | null;
  readonly fits: boolean;
  readonly peakGiB: number;
  readonly capacityGiB: number;
  /** Peak memory per GPU as the source published it (GiB), when it did. */
  readonly publishedGiB: number | null;
  readonly ran: boolean;
  readonly violation: string | null;
  /** A memory miss on a record whose published outcome is disputed, with the evidence (not a violation). */
  readonly disputed: string | null;
  readonly assumptions: readonly string[];
}

export interface Errors {
  readonly overall: ErrorSummary;
  readonly bySource: Readonly<Record<string, ErrorSummary>>;
}

export interface ValidateReport {
  readonly compares: string;
  readonly records: number;
  readonly compared: number;
  readonly outOfMemoryRecords: number;
  readonly skipped: readonly Skipped[];
  readonly calibration: { readonly fittedAt: string; readonly scales: CalibrationScales; readonly folds: number } | null;
  readonly summary: {
    readonly model: Errors;
    readonly prior: Errors;
    readonly baseline: Errors;
    readonly heldOut: { readonly model: Errors; readonly baseline: Errors } | null;
    /** Predicted peak memory per GPU against the published figure, where one is published. */
    readonly memory: Errors;
  };
  readonly violations: readonly { readonly id: string; readonly source: string; readonly violation: string; readonly peakGiB: number; readonly capacityGiB: number }[];
  /** Memory misses on records whose published outcome stronger evidence contradicts: listed with it, not counted as violations. */
  readonly disputed: readonly { readonly id: string; readonly source: string; readonly disputed: string; readonly peakGiB: number; readonly capacityGiB: number }[];
  readonly rows: readonly ReportRow[];
}

const GIB = 2 ** 30;

export function planLabel(p: PreparedCase): string {
  const x = p.plan;
  const v = x.virtualStages > 1 ? ` v${x.virtualStages}` : "";
  const rc = x.recomputeLayersPerStage.some((n) => n > 0) && x.recompute !== "full" ? "part-full" : x.recompute;
  return `tp${x.tp} pp${x.pp}${v} dp${x.dp}${x.cp > 1 ? ` cp${x.cp}` : ""} mb${x.microBatch} gb${x.globalBatch} s${x.seqLen} z${x.zero} ${rc} ${x.precision}`;
}

export function errorsOf(items: readonly { source: string; error: number | null }[]): Errors {
  const withError = items.filter((i): i is { source: string; error: number } => i.error !== null);
  const bySource: Record<string, ErrorSummary> = {};
  for (const [source, list] of groupBy(withError, (i) => i.source)) bySource[source] = summarize(list.map((i) => i.error));
  return { overall: summarize(withError.map((i) => i.error)), bySource };
}

/** Throughput errors of `cases` under one calibration, keyed by id. */
function errorsUnder(cases: readonly PreparedCase[], s: CalibrationScales): Map<string, number> {
  const ratios = throughputRatios(cases, s);
  return new Map(cases.map((c, i) => [c.case.id, ratios[i]! - 1]));
}

export function buildReport(records: PreparedRecords, calibration: CalibrationFile | undefined): ValidateReport {
  const { prepared, skipped } = records;
  const compared = comparable(prepared);
  const scales = calibration?.scales ?? IDENTITY;

  const prior = errorsUnder(compared, IDENTITY);
  const heldOut = new Map<string, number>();
  const heldOutBaseline = new Map<string, number>();
  for (const fold of calibration?.folds ?? []) {
    const { train, test } = foldSplit(compared, fold.heldOut);
    for (const [id, e] of errorsUnder(test, fold.scales)) heldOut.set(id, e);
    const b = fitBaseline(train);
    for (const p of test) heldOutBaseline.set(p.case.id, baselineTokensPerSecondPerGpu(b, p) / p.case.measurement!.tokensPerSecondPerGpu - 1);
  }
  const baseline = fitBaseline(compared);
  const calibrated = calibratedClusters(scales);
  const rows: ReportRow[] = prepared.map((p) => {
    const pred = predictCase(p, quickScore, calibrated(p.shape.spec));
    const m = pred.measurement;
    const comparedRow = pred.error !== undefined;
    return {
      id: p.case.id, source: p.case.source, model: p.case.model.displayName, cluster: p.case.cluster, gpus: p.case.gpus, plan: planLabel(p),
      measured: m === undefined ? null : { kind: m.kind, value: m.value, compares: m.compares },
      predicted: pred.predicted ?? null,
      error: pred.error ?? null,
      priorError: prior.get(p.case.id) ?? null,
      heldOutError: heldOut.get(p.case.id) ?? null,
      baselineError: comparedRow && m !== undefined ? baselineTokensPerSecondPerGpu(baseline, p) / m.tokensPerSecondPerGpu - 1 : null,
      heldOutBaselineError: heldOutBaseline.get(p.case.id) ?? null,
      fits: pred.fits, peakGiB: pred.peakBytesPerGpu / GIB, capacityGiB: pred.capacityBytes / GIB,
      publishedGiB: p.case.publishedMemoryBytes === undefined ? null : p.case.publishedMemoryBytes / GIB, ran: pred.ran,
      violation: pred.violation ?? null,
      disputed: pred.disputed ?? null,
      assumptions: pred.assumptions,
    };
  });
  const pick = (f: (r: ReportRow) => number | null) => errorsOf(rows.map((r) => ({ source: r.source, error: f(r) })));
  const hasFolds = (calibration?.folds.length ?? 0) > 0;
  return {
    compares: COMPARES,
    records: records.count,
    compared: compared.length,
    outOfMemoryRecords: prepared.filter((p) => !p.case.ran).length,
    skipped,
    calibration: calibration === undefined ? null : { fittedAt: calibration.fittedAt, scales: calibration.scales, folds: calibration.folds.length },
    summary: {
      model: pick((r) => r.error),
      prior: pick((r) => r.priorError),
      baseline: pick((r) => r.baselineError),
      heldOut: hasFolds ? { model: pick((r) => r.heldOutError), baseline: pick((r) => r.heldOutBaselineError) } : null,
      memory: pick((r) => (r.publishedGiB === null ? null : r.peakGiB / r.publishedGiB - 1)),
    },
    violations: rows.filter((r) => r.violation !== null).map((r) => ({ id: r.id, source: r.source, violation: r.violation!, peakGiB: r.peakGiB, capacityGiB: r.capacityGiB })),
    disputed: rows.filter((r) => r.disputed !== null).map((r) => ({ id: r.id, source: r.source, disputed: r.disputed!, peakGiB: r.peakGiB, capacityGiB: r.capacityGiB })),
    rows,
  };
}
