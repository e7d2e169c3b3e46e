import { totalmem } from "node:os";
import type { ModelSpec, Plan } from "../spec/types.js";
import { allocateFabric, layoutFabric } from "./comm/fabric.js";
import { assembleWeights, maxWeightDifference, stepLosses, type Weights } from "./measure/weights.js";
import { routingGroupTokens } from "./model/layout.js";
import { DEFAULT_ADAM, type AdamConfig } from "./parallel/adam.js";
import { fabricFor, workerCount } from "./parallel/grid.js";
import type { BackendChoice } from "./run/backend.js";
import { heapCollectivesIn, type RankJob, type RankResult } from "./run/job.js";
import { launch } from "./run/launch.js";
import type { FaultSpec, PassCount } from "./run/protocol.js";
import { rankProgram } from "./run/rank.js";
import type { SpeedProbeSpec } from "./run/speed-probe.js";
import { DEFAULT_TIMEOUT_SECONDS } from "./comm/sync.js";
import { referencePlan, validateForExecutor } from "./validate.js";

/**
 * Timed steps an execution runs unless told otherwise: on the shared 2-core VM one step of a CI plan took
 * 63 to 100 ms from one step to the next (the waits at collectives moved most), so the median of 5 moved
 * with one slow step more than the median of 12, which is what the timing figures in README were taken with.
 */
export const DEFAULT_TIMED_STEPS = 12;

/** How a progress display names step `step` (0-based) of `all`, the first `warmup` of them warm-up. */
export function stepLabel(step: number, all: number, warmup: number): string {
  return `step ${step + 1}/${all}${step < warmup ? " (warm-up, not timed)" : ""}`;
}

/**
 * Runs a plan for real: one worker thread per rank (plus one per parameter server), a few training
 * steps, and optionally the one-rank reference of the same seed in this thread, whose losses and final
 * weights every synchronous split must reproduce (fp32: losses within 1e-4 relative, weights within 1e-3).
 */
export interface ExecuteOptions {
  readonly model: ModelSpec;
  readonly plan: Plan;
  /** Timed training steps, run after the warm-up ones. */
  readonly steps: number;
  /**
   * Training steps run before the timed ones (default 0): each worker starts cold, and its steps take up
   * to twice their steady time until V8 has compiled the hot paths (about 15 steps of tiny-gpt; README
   * "Warm-up"). They train like the rest: their losses are reported and checked against the reference.
   */
  readonly warmupSteps?: number;
  readonly seed?: number;
  readonly timeoutSeconds?: number;
  readonly backend?: BackendChoice;
  readonly adam?: AdamConfig;
  /** Also run the one-rank reference and compare (default true). */
  readonly reference?: boolean;
  readonly fault?: FaultSpec;
  /**
   * A one-rank step every rank runs at once before each of its steps, timed (run/speed-probe.ts): the
   * machine's speed during the run, for predictions at that speed (profile.ts atRunSpeed). Not in the
   * one-rank reference. Absent: none.
   */
  readonly speedProbe?: SpeedProbeSpec;
  /**
   * Tensor- and context-parallel collectives and ZeRO's weight gathers read the other ranks' data from
   * their wasm heaps, made shareable (run/shared-heap.ts; default true); false keeps every heap unshared
   * and copies the data through the fabric's slots instead. Either way the numerics and the bytes counted
   * are the same.
   */
  readonly sharedHeap?: boolean;
  readonly onProgress?: (event: ProgressEvent) => void;
  readonly onOutput?: (rank: number, text: string) => void;
}

/**
 * `phase`: "step" when `rank` has finished step `step`; "passes" inside a long step, with the passes it has
 * begun (run/rank.ts PASS_PROGRESS_EVERY_MS); "reference step" and "reference passes" the same for the
 * one-rank reference, which runs after the ranks (its `rank` is 0); "server" a parameter server's update.
 */
export interface ProgressEvent {
  readonly rank: number;
  readonly step: number;
  readonly phase: string;
  readonly passes?: PassCount;
}

export interface Numerics {
  readonly referenceLosses: number[];
  /** Largest relative difference of a step loss from the reference's. */
  readonly maxRelativeError: number;
  /** Largest absolute difference of a final weight, and its tensor. */
  readonly maxWeightError: number;
  readonly worstTensor: string;
}

export interface Execution {
  readonly model: ModelSpec;
  readonly plan: Plan;
  /** Leading steps of every rank's record that were warm-up, not timed. */
  readonly warmupSteps: number;
  readonly backend: string;
  readonly workers: number;
  readonly results: readonly RankResult[];
  readonly losses: number[];
  readonly weights: Weights;
  readonly numerics: Numerics | undefined;
}

/**
 * Warm-up steps the command line and the explorer run before the timed ones: tiny-gpt's steps on two
 * ranks reach their steady time after about 15 (measured: tp2 213 ms at step 2, 120-140 ms at steps 10-20,
 * 95-110 ms after 20; README "Warm-up").
 */
export const DEFAULT_WARMUP_STEPS = 15;

/** The global batch execute runs where neither --global-batch nor the model gives one (fit-plan.ts). */
export { EXECUTE_DEFAULT_GLOBAL_BATCH } from "./measure/fit-plan.js";

/** The seed of every run unless another is asked for. */
export const DEFAULT_SEED = 1234;

/** The job every rank gets; the one-rank reference (`ranks` false) runs without the fault and the speed probe. */
function job(o: ExecuteOptions, plan: Plan, ranks: boolean): RankJob {
  return {
    model: o.model, plan, steps: (o.warmupSteps ?? 0) + o.steps, seed: o.seed ?? DEFAULT_SEED, adam: o.adam ?? DEFAULT_ADAM,
    backend: o.backend ?? "wasm", collectWeights: true, ...(o.fault === undefined || !ranks ? {} : { fault: o.fault }),
    ...(o.speedProbe === undefined || !ranks ? {} : { speedProbe: o.speedProbe }),
    // The plan's routing groups, which the one-rank reference keeps.
    ...(o.model.moe === undefined ? {} : { routingTokens: routingGroupTokens(o.model, o.plan) }),
  };
}

/** The one-rank reference, in this thread (its fabric has no peers, so nothing ever waits). */
export async function runReference(o: ExecuteOptions): Promise<{ losses: number[]; weights: Weights; result: RankResult }> {
  const plan = referencePlan(o.model, o.plan);
  const fabric = fabricFor(o.model, plan);
  const memory = allocateFabric(layoutFabric(fabric));
  const result = (await rankProgram(
    { program: "rank", rank: 0, memory, fabric, timeoutSeconds: o.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS, payload: job(o, plan, false) },
    (step, phase, passes) => o.onProgress?.({ rank: 0, step, phase: `reference ${phase}`, ...(passes === undefined ? {} : { passes }) }),
    () => Promise.reject(new Error("internal: the one-rank reference shares no heap")),
  )) as RankResult;
  return { losses: stepLosses([result]), weights: assembleWeights(o.model, 1, [result]), result };
}

export function compareNumerics(losses: readonly number[], weights: Weights, ref: { losses: number[]; weights: Weights }): Numerics {
  const rel = losses.map((l, i) => Math.abs(l - ref.losses[i]!) / Math.abs(ref.losses[i]!));
  const w = maxWeightDifference(weights, ref.weights);
  return { referenceLosses: ref.losses, maxRelativeError: Math.max(0, ...rel), maxWeightError: w.value, worstTensor: w.tensor };
}

export async function execute(o: ExecuteOptions): Promise<Execution> {
  validateForExecutor(o.model, o.plan, totalmem());
  const plan = o.plan;
  const fabric = fabricFor(o.model, plan);
  const workers = workerCount(plan);
  const j = job(o, plan, true);
  // Ranks share their wasm heaps for the tensor- and context-parallel collectives (tensor-group.ts) and
  // the ZeRO weight gathers (parallel/state.ts).
  const shareHeap = o.sharedHeap !== false && heapCollectivesIn(plan);
  const ranks = Array.from({ length: fabric.ranks }, (_, r) => (r < workers ? { program: "rank" as const, payload: j, shareHeap } : { program: "server" as const, payload: j }));
  const results = (await launch({
    fabric, ranks, timeoutSeconds: o.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
    ...(o.onProgress === undefined ? {} : {
      onProgress: (rank: number, step: number, phase: string, passes?: PassCount) => o.onProgress!({ rank, step, phase, ...(passes === undefined ? {} : { passes }) }),
    }),
    ...(o.onOutput === undefined ? {} : { onOutput: o.onOutput }),
  })) as RankResult[];
  const losses = stepLosses(results);
  const weights = assembleWeights(o.model, plan.tp, results, plan.ep);
  const numerics = o.reference === false ? undefined : compareNumerics(losses, weights, await runReference(o));
  return { model: o.model, plan, warmupSteps: o.warmupSteps ?? 0, backend: results[0]?.backend ?? "none", workers, results, losses, weights, numerics };
}
