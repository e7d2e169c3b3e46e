import { InputError } from "../spec/errors.js";
import { resolvePlan } from "../spec/plan.js";
import type { ClusterShape, ClusterSpec, ModelSpec, Plan } from "../spec/types.js";
import { recordCase, type ValidationCase, type Skipped } from "./cases.js";
import type { MeasurementRecord } from "./records.js";
import { withAttentionKernel } from "./calibration.js";
import { inSourceUnits, type Measurement } from "./conventions.js";

/** A case with its plan resolved against its cluster: what every predictor is evaluated on. */
export interface PreparedCase {
  readonly case: ValidationCase;
  readonly shape: ClusterShape;
  readonly plan: Plan;
}

/** The records of a validation run, prepared once for the report, the planner comparison and the fit. */
export interface PreparedRecords {
  /** Records read. */
  readonly count: number;
  readonly prepared: PreparedCase[];
  readonly skipped: Skipped[];
}

/** Every record as a case resolved on its built-in cluster, and every record that could not be, with the reason. */
export function prepareRecords(
  records: readonly MeasurementRecord[], builtins: readonly ModelSpec[], cluster: (name: string) => ClusterSpec,
): PreparedRecords {
  const cases: ValidationCase[] = [];
  const skipped: Skipped[] = [];
  for (const r of records) {
    const result = recordCase(r, builtins);
    if ("case" in result) cases.push(result.case);
    else skipped.push(result.skipped);
  }
  const prep = prepareCases(cases, cluster);
  return { count: records.length, prepared: prep.prepared, skipped: [...skipped, ...prep.skipped] };
}

/** What a predictor says about one plan: throughput over the whole cluster and the worst GPU's memory. */
export interface Predicted {
  readonly tokensPerSecond: number;
  readonly peakBytesPerGpu: number;
  readonly fits: boolean;
}

export type Predictor = (model: ModelSpec, shape: ClusterShape, plan: Plan) => Predicted;

/** Resolves each case's plan on its built-in cluster; a plan meshplan rejects is skipped with the reason. */
export function prepareCases(cases: readonly ValidationCase[], cluster: (name: string) => ClusterSpec): { prepared: PreparedCase[]; skipped: Skipped[] } {
  const prepared: PreparedCase[] = [];
  const skipped: Skipped[] = [];
  for (const c of cases) {
    const spec = withAttentionKernel(cluster(c.cluster), c.attentionKernel);
    const shape: ClusterShape = { spec, gpus: c.gpus, gpusPerNode: spec.gpusPerNode };
    try {
      prepared.push({ case: c, shape, plan: resolvePlan(c.model, shape, c.plan) });
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      skipped.push({ id: c.id, source: c.source, reason: `plan rejected: ${e.message}` });
    }
  }
  return { prepared, skipped };
}

export interface CasePrediction {
  readonly id: string;
  readonly source: string;
  readonly model: string;
  readonly cluster: string;
  readonly gpus: number;
  readonly plan: Plan;
  readonly ran: boolean;
  readonly fits: boolean;
  readonly peakBytesPerGpu: number;
  readonly capacityBytes: number;
  readonly measurement: Measurement | undefined;
  /** Predicted value in the measurement's unit. */
  readonly predicted: number | undefined;
  readonly predictedTokensPerSecondPerGpu: number;
  /** Relative error of throughput: predicted / measured - 1 (undefined for out-of-memory records). */
  readonly error: number | undefined;
  /** A published run predicted not to fit, or a reported out-of-memory run predicted to fit. */
  readonly violation: string | undefined;
  /** Such a miss on a record whose published outcome is disputed (ValidationCase.disputed): the miss and the evidence, not a violation. */
  readonly disputed: string | undefined;
  readonly assumptions: readonly string[];
}

/** Relative error of a predicted throughput against a measured one. */
export function relativeError(predicted: number, measured: number): number {
  return predicted / measured - 1;
}

export function predictCase(p: PreparedCase, predictor: Predictor, spec: ClusterSpec = p.shape.spec): CasePrediction {
  const c = p.case;
  const shape = spec === p.shape.spec ? p.shape : { ...p.shape, spec };
  const out = predictor(c.model, shape, p.plan);
  const perGpu = out.tokensPerSecond / c.gpus;
  const m = c.measurement;
  const miss = c.ran && !out.fits ? "ran, but predicted not to fit" : !c.ran && out.fits ? "ran out of memory, but predicted to fit" : undefined;
  const violation = c.disputed === undefined ? miss : undefined;
  const disputed = c.disputed !== undefined && miss !== undefined ? `${miss}; disputed: ${c.disputed}` : undefined;
  return {
    id: c.id,
    source: c.source,
    model: c.model.displayName,
    cluster: c.cluster,
    gpus: c.gpus,
    plan: p.plan,
    ran: c.ran,
    fits: out.fits,
    peakBytesPerGpu: out.peakBytesPerGpu,
    capacityBytes: shape.spec.gpu.memoryBytes,
    measurement: m,
    predicted: m === undefined ? undefined : inSourceUnits(m, perGpu),
    predictedTokensPerSecondPerGpu: perGpu,
    error: m === undefined || !c.ran ? undefined : relativeError(perGpu, m.tokensPerSecondPerGpu),
    violation,
    disputed,
    assumptions: c.assumptions,
  };
}
