import { InputError } from "../spec/errors.js";
import { FRAMEWORK_SWITCHES, type PlanInput } from "../spec/plan.js";
import {
  RECOMPUTES, SCHEDULES, TRAINING_PRECISIONS,
  type ClusterShape, type ClusterSpec, type ModelSpec, type Precision, type Recompute, type Schedule, type VPassRatios,
} from "../spec/types.js";
import { calibratedCluster, type CalibrationFile } from "../validate/calibration.js";
import { CALIBRATION_FILE, readCalibration } from "../validate/files.js";
import { FLAG_OF_PLAN_FIELD, type FlagName, type FlagValue } from "./args.js";
import { loadCluster, loadModel } from "./catalog.js";
import { grouped } from "../math/digits.js";

export const DEFAULT_MODEL = "llama3-70b";
export const DEFAULT_GPUS = 64;
export const DEFAULT_CLUSTER = "dgx-h100";

type Flags = Partial<Record<FlagName, FlagValue>>;

function str(flags: Flags, name: FlagName): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}
function int(flags: Flags, name: FlagName): number | undefined {
  const v = flags[name];
  return typeof v === "number" ? v : undefined;
}
/** A number flag (FlagType "number"): a decimal, checked for range where the plan is resolved. */
function num(flags: Flags, name: FlagName): number | undefined {
  return int(flags, name);
}
function bool(flags: Flags, name: FlagName): boolean | undefined {
  const v = flags[name];
  return typeof v === "boolean" ? v : undefined;
}
function list(flags: Flags, name: FlagName): number[] | undefined {
  const v = flags[name];
  return Array.isArray(v) ? v : undefined;
}

function choice<T extends string>(flags: Flags, name: FlagName, options: readonly T[]): T | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  if (!(options as readonly string[]).includes(v)) throw new InputError({ code: "bad-flag", field: `--${name}`, value: v, valid: options.join(", ") });
  return v as T;
}

/**
 * Largest cluster meshplan plans for: 2^20 GPUs, several times the largest training clusters reported
 * (about 100,000 to 200,000 GPUs in 2024-2025), so that a mistyped count is an error, not a search
 * through the divisors of a billion.
 */
export const MAX_GPUS = 2 ** 20;

function positive(flags: Flags, name: FlagName): number | undefined {
  const v = int(flags, name);
  if (v !== undefined && v < 1) throw new InputError({ code: "out-of-range", field: `--${name}`, value: v, valid: "an integer >= 1" });
  return v;
}

export interface Context {
  readonly model: ModelSpec;
  readonly shape: ClusterShape;
  /** When the calibration layer applied to the cluster was fitted (absent: the priors alone, --no-calibrated). */
  readonly calibratedAt?: string;
}

/**
 * The cluster with the efficiency factors `meshplan validate` fitted on published runs
 * (models/hardware/calibration.json; README, "Accuracy") applied to the datasheet and benchmark priors.
 */
function calibrate(spec: ClusterSpec): { spec: ClusterSpec; fittedAt: string } {
  const file = CALIBRATION_FILE();
  let cal: CalibrationFile | undefined;
  try {
    cal = readCalibration(file);
  } catch (e) {
    throw new InputError({ code: "bad-json", field: "--calibrated", value: file, valid: "a calibration file that `npm run calibrate` wrote, or --no-calibrated for the priors alone", reason: (e as Error).message });
  }
  if (cal === undefined) {
    throw new InputError({ code: "missing-field", field: "--calibrated", value: file, valid: "an existing calibration file (`npm run calibrate` writes it), or --no-calibrated for the priors alone", reason: "the file does not exist" });
  }
  return { spec: calibratedCluster(spec, cal.scales), fittedAt: cal.fittedAt };
}

/**
 * Loads the model and cluster that the common flags name. `calibratedByDefault`: plan, simulate and
 * explore predict with the calibration layer unless --no-calibrated asks for the priors alone (the
 * calibrated model is the one whose held-out accuracy README reports); execute predicts with its own
 * device profile and keeps the priors.
 */
export function loadContext(flags: Flags, calibratedByDefault = false): Context {
  const gpus = positive(flags, "gpus") ?? DEFAULT_GPUS;
  if (gpus > MAX_GPUS) throw new InputError({ code: "out-of-range", field: "--gpus", value: gpus, valid: `an integer from 1 to ${grouped(MAX_GPUS)}` });
  const model = loadModel(str(flags, "model") ?? DEFAULT_MODEL);
  const prior = loadCluster(str(flags, "cluster") ?? DEFAULT_CLUSTER, str(flags, "gpu"));
  const calibrated = (bool(flags, "calibrated") ?? calibratedByDefault) ? calibrate(prior) : undefined;
  const spec = calibrated?.spec ?? prior;
  const gpusPerNode = positive(flags, "gpus-per-node") ?? spec.gpusPerNode;
  if (gpus > gpusPerNode && gpus % gpusPerNode !== 0) {
    throw new InputError({
      code: "not-divisible", field: "--gpus", value: gpus,
      valid: `at most ${gpusPerNode} or a multiple of ${gpusPerNode} (GPUs per node on ${spec.name})`,
    });
  }
  return { model, shape: { spec, gpus, gpusPerNode }, ...(calibrated === undefined ? {} : { calibratedAt: calibrated.fittedAt }) };
}

/** `--zbv-passes B,W`: two numbers (resolvePlan checks their range). */
function passRatios(flags: Flags, name: FlagName): VPassRatios | undefined {
  const text = str(flags, name);
  if (text === undefined) return undefined;
  const parts = text.split(",").map((t) => (t.trim() === "" ? NaN : Number(t)));
  if (parts.length !== 2 || parts.some((x) => !Number.isFinite(x))) {
    throw new InputError({ code: "bad-flag", field: `--${name}`, value: text, valid: "two numbers B,W, e.g. 2,0.5 (B and W in chunk forwards)" });
  }
  return { backward: parts[0]!, weight: parts[1]! };
}

/** The plan knobs the flags pin; the rest stay undefined for defaults (simulate) or search (plan). */
export function planInputFrom(flags: Flags): PlanInput {
  const input: PlanInput = {};
  const set = <K extends keyof PlanInput>(key: K, value: PlanInput[K] | undefined) => {
    if (value !== undefined) input[key] = value;
  };
  const f = FLAG_OF_PLAN_FIELD;
  set("tp", positive(flags, f.tp));
  set("pp", positive(flags, f.pp));
  set("dp", positive(flags, f.dp));
  set("cp", positive(flags, f.cp));
  set("ep", positive(flags, f.ep));
  set("virtualStages", positive(flags, f.virtualStages));
  set("microBatch", positive(flags, f.microBatch));
  set("globalBatch", positive(flags, f.globalBatch));
  set("seqLen", positive(flags, f.seqLen));
  set("sequenceParallel", bool(flags, f.sequenceParallel));
  set("schedule", choice<Schedule>(flags, f.schedule, SCHEDULES));
  const zero = int(flags, f.zero);
  if (zero !== undefined && ![0, 1, 2, 3].includes(zero)) throw new InputError({ code: "bad-flag", field: `--${f.zero}`, value: zero, valid: "0, 1, 2, 3" });
  set("zero", zero);
  set("recompute", choice<Recompute>(flags, f.recompute, RECOMPUTES));
  set("precision", choice<Precision>(flags, f.precision, TRAINING_PRECISIONS));
  set("layersPerStage", list(flags, f.layersPerStage));
  set("recomputeLayersPerStage", list(flags, f.recomputeLayersPerStage));
  const ps = int(flags, f.parameterServers);
  if (ps !== undefined && ps < 0) throw new InputError({ code: "out-of-range", field: `--${f.parameterServers}`, value: ps, valid: "an integer >= 0" });
  set("parameterServers", ps);
  set("asynchronous", bool(flags, f.asynchronous));
  set("staleness", int(flags, f.staleness));
  set("shardGroup", positive(flags, f.shardGroup));
  set("optimizerStateBytes", int(flags, f.optimizerStateBytes));
  set("optimizerStepBytesPerParam", positive(flags, f.optimizerStepBytesPerParam));
  set("gradientAccumulationBytesPerParam", positive(flags, f.gradientAccumulationBytesPerParam));
  set("runtimeReserveBytes", int(flags, f.runtimeReserveBytes));
  set("allocatorCacheShare", num(flags, f.allocatorCacheShare));
  set("vPassRatios", passRatios(flags, f.vPassRatios));
  for (const key of ["flashAttention", "fp32Gradients", ...FRAMEWORK_SWITCHES] as const) {
    set(key, bool(flags, f[key]));
  }
  return input;
}
