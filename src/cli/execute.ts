import { totalmem } from "node:os";
import { DEFAULT_TIMED_STEPS, DEFAULT_WARMUP_STEPS, EXECUTE_DEFAULT_GLOBAL_BATCH, stepLabel, type ProgressEvent } from "../executor/execute.js";
import { executeAndReport } from "../executor/index.js";
import { formatReport } from "../executor/measure/table.js";
import { LOSS_TOLERANCE, numericsVerdict, WEIGHT_TOLERANCE } from "../executor/measure/numerics.js";
import { otherBackend, otherMachine } from "../executor/measure/machine.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import { calibrateMachine } from "./calibrate-machine.js";
import { backendNameOf, missingBackendPackage, type BackendChoice } from "../executor/run/backend.js";
import { ExecutionError } from "../executor/run/launch.js";
import { checkExecutorLayers, validateForExecutor } from "../executor/validate.js";
import { pinnedSchedule } from "../planner/search/space.js";
import { InputError } from "../spec/errors.js";
import { defaultGlobalBatch, resolvePlan, ZB_V_CHUNKS } from "../spec/plan.js";
import type { ModelSpec, Plan } from "../spec/types.js";
import { grouped } from "../math/digits.js";
import { planFieldAsFlag, type ParsedArgs } from "./args.js";
import { loadContext, planInputFrom } from "./context.js";
import { bar, batchRoundedNote, roundedTo } from "./format.js";
import type { Io } from "./io.js";
import { chooseSavedProfile, DEFAULT_PROFILE_FILE, profileOnDisk, readProfile } from "./profile-file.js";

/**
 * `meshplan execute`: runs a plan for real on this machine's ranks (TensorFlow.js, one worker thread per
 * rank), checks it against the one-rank reference, and prints predicted against measured. Exit codes:
 * 0 success, 1 a rank failed or a check failed, 2 bad input.
 */
const BACKENDS: readonly BackendChoice[] = ["auto", "wasm", "cpu", "tensorflow", "tensorflow-gpu"];

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

/**
 * The least time between two progress lines inside a step: a step of a large batch runs for minutes (tiny-gpt
 * at 131,072 sequences on dp2: 131,072 passes a rank at about 100 a second here, 22 minutes a step), and a
 * line a second would fill a log with a thousand of them.
 */
export const PROGRESS_LINE_EVERY_MS = 5000;

/**
 * Draws one line per completed step: every rank has reported it; the first `warmup` of `steps` are named so.
 * Inside a long step (ranks report their passes once a second after its first, run/rank.ts), a line every
 * `everyMs` at most with the passes the furthest-behind rank has begun; and for the one-rank reference,
 * which runs after the ranks, its pass reports and each step that took `everyMs` or more (a run of the
 * usual sizes, whose steps take milliseconds, shows none of these).
 */
export function progressReporter(io: Io, ranks: number, steps: number, warmup = 0, everyMs = PROGRESS_LINE_EVERY_MS, now = () => performance.now()): (e: ProgressEvent) => void {
  const done = new Array<number>(ranks).fill(-1);
  const passes = new Map<number, { step: number; done: number; of: number }>();
  let shown = -1;
  let lastLineMs = now();
  /** When the reference's last step ended; undefined before its first ends (that one began about at the last line). */
  let referenceStepEndMs: number | undefined;
  const width = 30;
  const progressBar = (fraction: number) => `[${bar(fraction, width)}]`;
  const line = (text: string, atMs: number) => {
    lastLineMs = atMs;
    io.err(text);
  };
  /**
   * What the reference's event `e` at `atMs` shows, or undefined: a pass report where everyMs have passed
   * since the last line; a step's end where that step took everyMs or more.
   */
  const referenceLine = (e: ProgressEvent, atMs: number): string | undefined => {
    const step = `step ${e.step + 1}/${steps}`;
    if (e.passes !== undefined) {
      if (atMs - lastLineMs < everyMs) return undefined;
      return `${step}, pass ${grouped(e.passes.done)} of ${grouped(e.passes.of)}`;
    }
    const stepMs = atMs - (referenceStepEndMs ?? lastLineMs);
    referenceStepEndMs = atMs;
    if (stepMs < everyMs) return undefined;
    return `${step} done`;
  };
  return (e) => {
    const atMs = now();
    if (e.phase.startsWith("reference ")) {
      const where = referenceLine(e, atMs);
      if (where !== undefined) line(`execute: the one-rank reference (the same steps on one rank, for the numerics): ${where}`, atMs);
      return;
    }
    if (e.rank >= ranks) return;
    if (e.phase === "passes" && e.passes !== undefined) {
      passes.set(e.rank, { step: e.step, ...e.passes });
      if (atMs - lastLineMs < everyMs) return;
      // The furthest-behind rank on the step the bar is at (ranks done with it have moved on).
      const all = Math.min(...done);
      let behind: { done: number; of: number } | undefined;
      for (let r = 0; r < ranks; r++) {
        const p = passes.get(r);
        if (done[r] === all && p?.step === all + 1 && (behind === undefined || p.done / p.of < behind.done / behind.of)) behind = p;
      }
      if (behind === undefined) return;
      line(`execute ${progressBar((all + 1 + behind.done / behind.of) / steps)} ${stepLabel(all + 1, steps, warmup)}: pass ${grouped(behind.done)} of ${grouped(behind.of)}`, atMs);
      return;
    }
    if (e.phase !== "step") return;
    done[e.rank] = Math.max(done[e.rank]!, e.step);
    const all = Math.min(...done);
    if (all <= shown) return;
    shown = all;
    line(`execute ${progressBar((all + 1) / steps)} ${stepLabel(all, steps, warmup)}`, atMs);
  };
}

/**
 * The lines that say where the global batch came from when --global-batch did not give it: the model's
 * (or, where the model file has none, EXECUTE_DEFAULT_GLOBAL_BATCH), rounded up to what the split takes.
 */
export function batchNotes(model: ModelSpec, plan: Plan, asked: number | undefined): string[] {
  if (asked !== undefined) return [];
  if (model.globalBatch !== undefined) {
    const rounded = batchRoundedNote(plan, model.globalBatch, undefined);
    return rounded === undefined ? [] : [rounded];
  }
  const planner = defaultGlobalBatch(model, plan.seqLen); // the model has no batch: the planner's 4M tokens
  const rounded = plan.globalBatch === EXECUTE_DEFAULT_GLOBAL_BATCH ? "" : `, ${roundedTo(plan)}`;
  return [`global batch ${plan.globalBatch} sequences: ${model.name} gives none, so execute runs its default of ${EXECUTE_DEFAULT_GLOBAL_BATCH}${rounded} (--global-batch sets it); the planner's default, 4M tokens, would be ${grouped(planner)} sequences a step`];
}

/**
 * The device profile the prediction uses: --profile FILE as given (with a warning when another machine or
 * another backend measured it: the report says so too), else the saved meshplan-profile.json where this
 * machine measured it on the run's backend, else one measured now (src/executor/README.md, "`meshplan
 * execute`: its profile ...").
 */
async function profileFor(args: ParsedArgs, io: Io, backend: BackendChoice, ranks: number): Promise<DeviceProfile> {
  const runs = backendNameOf(backend, ranks);
  const given = extraFlag(args, "profile");
  if (typeof given === "string") {
    const profile = readProfile(given);
    const other = otherMachine(profile);
    if (other !== undefined) io.err(`execute: warning: --profile ${given}: ${other}; predictions use its rates`);
    const calibratedOn = otherBackend(profile, runs);
    if (calibratedOn !== undefined) io.err(`execute: warning: --profile ${given} was calibrated on the ${calibratedOn} backend and this run uses ${runs}; predictions use the ${calibratedOn} backend's rates`);
    return profile;
  }
  const choice = chooseSavedProfile(profileOnDisk(DEFAULT_PROFILE_FILE), runs);
  if (choice.kind === "use") return choice.saved.profile;
  if (choice.kind === "refuse") throw choice.error;
  io.err(`execute: ${choice.because}; calibrating this machine first (meshplan calibrate${backend === "wasm" ? "" : ` --backend ${backend}`} saves one)`);
  return calibrateMachine(backend);
}

export async function executeCommand(args: ParsedArgs, io: Io): Promise<number> {
  try {
    const flags = { ...args.flags };
    flags.model ??= "tiny-gpt";
    if (flags.gpus === undefined) {
      const degree = (n: unknown) => (typeof n === "number" ? n : 1);
      flags.gpus = degree(flags.dp) * degree(flags.tp) * degree(flags.pp) * degree(flags.cp);
    }
    const { model: loaded, shape } = loadContext(flags);
    // A model file without a batch (a Hugging Face config.json): the executor's small default, which
    // resolvePlan rounds up as it rounds any default, instead of the planner's 4M tokens.
    const model = loaded.globalBatch === undefined ? { ...loaded, globalBatch: EXECUTE_DEFAULT_GLOBAL_BATCH } : loaded;
    const input = planInputFrom(flags);
    // Before resolvePlan, whose hint for an uneven interleaved split is a layout the executor does not run.
    const schedule = pinnedSchedule(input);
    if (schedule === "interleaved" || schedule === "zb-v") {
      const virtualStages = schedule === "zb-v" ? ZB_V_CHUNKS : input.virtualStages ?? 1; // zb-v's own (resolvePlan refuses another --vpp)
      checkExecutorLayers(model.layers, { pp: input.pp ?? 1, virtualStages, schedule, layersPerStage: input.layersPerStage });
    }
    const plan = resolvePlan(model, shape, { flashAttention: false, ...input });
    const steps = positiveFlag(args, "steps", DEFAULT_TIMED_STEPS);
    const warmupSteps = countFlag(args, "warmup", DEFAULT_WARMUP_STEPS);
    const timeoutSeconds = positiveFlag(args, "timeout", 60);
    const seed = positiveFlag(args, "seed", 1234);
    const backend = backendFlag(args);
    // Before calibrating: a plan the executor cannot run is bad input, said at once.
    validateForExecutor(model, plan, totalmem());
    const notes = batchNotes(loaded, plan, input.globalBatch);
    const workers = plan.dp * plan.tp * plan.pp * plan.cp;
    const profile = await profileFor(args, io, backend, workers);
    const run = await executeAndReport({
      model, plan, steps, warmupSteps, seed, timeoutSeconds, backend,
      sharedHeap: extraFlag(args, "shared-heap") !== false,
      reference: !plan.asynchronous,
      onProgress: progressReporter(io, workers, warmupSteps + steps, warmupSteps),
    }, profile);
    const full = { ...run.report, notes: [...notes, ...run.report.notes] };
    io.out(flags.json === true ? JSON.stringify(full, null, 2) : formatReport(full, model.name));
    const n = run.ex.numerics;
    if (n !== undefined && !numericsVerdict(model, run.ex.losses, n).ok) {
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
