import { totalmem } from "node:os";
import { DEFAULT_TIMED_STEPS, DEFAULT_WARMUP_STEPS, stepLabel, type ProgressEvent } from "../executor/execute.js";
import { executeAndReport } from "../executor/index.js";
import { formatReport } from "../executor/measure/table.js";
import { otherMachine } from "../executor/measure/machine.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import { calibrate } from "../executor/measure/calibrate.js";
import { missingBackendPackage, type BackendChoice } from "../executor/run/backend.js";
import { ExecutionError } from "../executor/run/launch.js";
import { validateForExecutor } from "../executor/validate.js";
import { InputError } from "../spec/errors.js";
import { resolvePlan } from "../spec/plan.js";
import { planFieldAsFlag, type ParsedArgs } from "./args.js";
import { loadModel } from "./catalog.js";
import { loadContext, planInputFrom } from "./context.js";
import type { Io } from "./io.js";
import { DEFAULT_PROFILE_FILE, profileOnDisk, readProfile } from "./profile-file.js";

/**
 * `meshplan execute`: runs a plan for real on this machine's ranks (TensorFlow.js, one worker thread per
 * rank), checks it against the one-rank reference, and prints predicted against measured. Exit codes:
 * 0 success, 1 a rank failed or a check failed, 2 bad input.
 */
const BACKENDS: readonly BackendChoice[] = ["auto", "wasm", "cpu", "tensorflow", "tensorflow-gpu"];
/** Loss agreement with the reference (fp32; issue 5): 1e-4 relative per step, 1e-3 absolute per weight. */
const LOSS_TOLERANCE = 1e-4;
const WEIGHT_TOLERANCE = 1e-3;

/** Flags this command adds to the vocabulary (read loosely until args.ts registers them). */
export function extraFlag(args: ParsedArgs, name: string): unknown {
  return (args.flags as Record<string, unknown>)[name];
}

function integerFlag(args: ParsedArgs, name: string, fallback: number, least: number): number {
  const v = extraFlag(args, name) ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < least) throw new InputError({ code: "bad-flag", field: `--${name}`, value: v, valid: `an integer >= ${least}` });
  return v;
}

export function positiveFlag(args: ParsedArgs, name: string, fallback: number): number {
  return integerFlag(args, name, fallback, 1);
}

export function countFlag(args: ParsedArgs, name: string, fallback: number): number {
  return integerFlag(args, name, fallback, 0);
}

export function backendFlag(args: ParsedArgs): BackendChoice {
  const v = extraFlag(args, "backend") ?? "wasm";
  if (typeof v !== "string" || !(BACKENDS as readonly string[]).includes(v)) throw new InputError({ code: "bad-flag", field: "--backend", value: v, valid: BACKENDS.join(", ") });
  const missing = missingBackendPackage(v as BackendChoice);
  if (missing !== undefined) {
    throw new InputError({
      code: "unsupported", field: "--backend", value: v, valid: `auto, wasm or cpu, or install ${missing} (its install downloads libtensorflow)`,
      reason: `${missing} is not installed`,
    });
  }
  return v as BackendChoice;
}

/** Draws one line per completed step: every rank has reported it; the first `warmup` of `steps` are named so. */
export function progressReporter(io: Io, ranks: number, steps: number, warmup = 0): (e: ProgressEvent) => void {
  const done = new Array<number>(ranks).fill(-1);
  let shown = -1;
  return (e) => {
    if (e.phase !== "step" || e.rank >= ranks) return;
    done[e.rank] = Math.max(done[e.rank]!, e.step);
    const all = Math.min(...done);
    if (all <= shown) return;
    shown = all;
    const width = 30;
    const filled = Math.round(((all + 1) / steps) * width);
    io.err(`execute [${"#".repeat(filled)}${".".repeat(width - filled)}] ${stepLabel(all, steps, warmup)}`);
  };
}

/**
 * The device profile the prediction uses: --profile FILE as given (with a warning when another machine
 * measured it), else the saved meshplan-profile.json where this machine measured it, else one measured now.
 */
async function profileFor(args: ParsedArgs, io: Io, backend: BackendChoice): Promise<DeviceProfile> {
  const given = extraFlag(args, "profile");
  if (typeof given === "string") {
    const profile = readProfile(given);
    const other = otherMachine(profile);
    if (other !== undefined) io.err(`execute: warning: --profile ${given}: ${other}; predictions use its rates`);
    return profile;
  }
  const saved = profileOnDisk(DEFAULT_PROFILE_FILE);
  if (saved.kind === "usable") return saved.profile;
  if (saved.kind === "unreadable") throw saved.error;
  const why = saved.kind === "missing" ? `no device profile (${saved.file})` : `${saved.file} does not describe this machine (${saved.why})`;
  io.err(`execute: ${why}; calibrating this machine first (meshplan calibrate saves one)`);
  return calibrate({ backend, base: loadModel("tiny-gpt") });
}

export async function executeCommand(args: ParsedArgs, io: Io): Promise<number> {
  try {
    const flags = { ...args.flags };
    flags.model ??= "tiny-gpt";
    if (flags.gpus === undefined) {
      const degree = (n: unknown) => (typeof n === "number" ? n : 1);
      flags.gpus = degree(flags.dp) * degree(flags.tp) * degree(flags.pp) * degree(flags.cp);
    }
    const { model, shape } = loadContext(flags);
    const input = planInputFrom(flags);
    const plan = resolvePlan(model, shape, { flashAttention: false, ...input });
    const steps = positiveFlag(args, "steps", DEFAULT_TIMED_STEPS);
    const warmupSteps = countFlag(args, "warmup", DEFAULT_WARMUP_STEPS);
    const timeoutSeconds = positiveFlag(args, "timeout", 60);
    const seed = positiveFlag(args, "seed", 1234);
    const backend = backendFlag(args);
    // Before calibrating: a plan the executor cannot run is bad input, said at once.
    validateForExecutor(model, plan, totalmem());
    const profile = await profileFor(args, io, backend);
    const workers = plan.dp * plan.tp * plan.pp * plan.cp;
    const { ex, report } = await executeAndReport({
      model, plan, steps, warmupSteps, seed, timeoutSeconds, backend,
      sharedHeap: extraFlag(args, "shared-heap") !== false,
      reference: !plan.asynchronous,
      onProgress: progressReporter(io, workers, warmupSteps + steps, warmupSteps),
    }, profile);
    io.out(flags.json === true ? JSON.stringify(report, null, 2) : formatReport(report, model.name));
    const n = ex.numerics;
    if (n !== undefined && (n.maxRelativeError > LOSS_TOLERANCE || n.maxWeightError > WEIGHT_TOLERANCE)) {
      io.err(`execute: the split does not reproduce the one-rank run: loss difference ${n.maxRelativeError.toExponential(2)} (limit ${LOSS_TOLERANCE}), weight difference ${n.maxWeightError.toExponential(2)} in ${n.worstTensor} (limit ${WEIGHT_TOLERANCE})`);
      return 1;
    }
    return 0;
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`meshplan: ${planFieldAsFlag(e).message}`);
      return 2;
    }
    if (e instanceof ExecutionError) {
      io.err(`meshplan: execution failed: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
