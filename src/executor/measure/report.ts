import { stageMemory } from "../../planner/cost/estimate.js";
import type { MemoryBreakdown } from "../../planner/cost/memory.js";
import { planCosts } from "../../planner/cost/stages.js";
import type { Estimate } from "../../planner/cost/types.js";
import type { ClusterShape, Plan } from "../../spec/types.js";
import { COMM_KINDS, type CommKind } from "../comm/fabric.js";
import type { Execution } from "../execute.js";
import { heapCollectiveKinds, type RankResult, type StepRecord } from "../run/job.js";
import { peakActivationElements } from "./accounting.js";
import { costModelElements } from "./cost-map.js";
import { numericsVerdict } from "./numerics.js";
import { mean, medianInterval, total, upperMedian, type MedianInterval } from "./stats.js";
import { stageUnits, unitSlots } from "../model/layout.js";
import { seconds } from "../../cli/format.js";

/** What a run is compared with: the estimate, on the cluster it was made for (profile.ts predictOnProfile). */
export interface ReportedPrediction {
  readonly shape: ClusterShape;
  readonly estimate: Estimate;
  /** The pipeline stage the predicted bubble is of; undefined with one stage. */
  readonly criticalStage?: number | undefined;
  /** How the prediction was made, when it is not the exact simulated step (for the report's notes). */
  readonly note?: string | undefined;
  /** The machine's speed during the run, where the run measured it and the prediction is made at it. */
  readonly speed?: RunSpeed | undefined;
  /** The backend the profile was calibrated on, where it is not the one the run's ranks ran on. */
  readonly profileBackend?: string | undefined;
}

/**
 * The speed probe's step (calibrate's concurrency step, run/speed-probe.ts) with the run's ranks running it
 * at once: at calibration (the profile's slowdown for that many ranks times the fitted one-rank step) and
 * during the run (the median over the timed steps); and the predicted step had the machine kept its speed
 * of calibration. The prediction reported is made at the run's speed.
 */
export interface RunSpeed {
  readonly probe: string;
  readonly calibrationSeconds: number;
  readonly runSeconds: number;
  readonly stepSecondsAtCalibration: number;
}

export interface RankMeasurement {
  readonly rank: number;
  readonly stage: number;
  readonly stepSeconds: number;
  readonly forwardSeconds: number;
  readonly backwardSeconds: number;
  readonly optimizerSeconds: number;
  /** Seconds in collectives and messages by kind, and of those, blocked waiting for peers. */
  readonly commSeconds: Record<CommKind, number>;
  readonly idleSeconds: number;
  readonly bubbleFraction: number;
  readonly memory: {
    readonly parametersBytes: number;
    readonly gradientsBytes: number;
    readonly optimizerBytes: number;
    readonly activationsBytes: number;
    /** The executor's tfjs accounting of the activations (4 bytes per element the cost model counts). */
    readonly predictedActivationsBytes: number;
    readonly peakBytes: number;
    /** The tfjs accounting's peak: model states, kept activations and, under ZeRO-3, one gathered unit (and a tied embedding held beside it, gatheredFloats). */
    readonly predictedPeakBytes: number;
    /** The cost model's breakdown for this rank's stage (16-bit weights and activations). */
    readonly costModel: MemoryBreakdown;
  };
}

/**
 * The execute command's result, the JSON contract of design brief section 5 (plan, engine, predicted,
 * measured, numerics) with extensions: per-rank breakdowns, the tfjs memory accounting, and notes that
 * say when a comparison is not meaningful.
 */
export interface ExecuteReport {
  readonly plan: Plan;
  /**
   * heapCollectives (an extension): every training rank's tensor- and context-parallel collectives,
   * expert-parallel all-to-alls and ZeRO weight gathers read the other ranks' shared wasm heaps (false when
   * they went through the slots, or when the plan has none).
   */
  readonly engine: { readonly name: string; readonly backend: string; readonly devices: number; readonly heapCollectives: boolean };
  readonly predicted: Estimate;
  readonly measured: {
    readonly stepSeconds: number;
    readonly bubbleFraction: number;
    readonly peakBytesPerRank: number[];
    readonly commBytesPerRank: Record<CommKind, number>[];
    /** Every step's loss, the warm-up steps' first. */
    readonly losses: number[];
    /** Leading steps not timed (warm-up); the step times and the bubble are medians over the rest. */
    readonly warmupSteps: number;
    /**
     * How well the timed steps pin those medians down (an extension): the interval that holds the median
     * step, and the bubble's (with more than one stage), with the probability it gives, taking the steps as
     * independent samples (stats.ts medianInterval: 12 timed steps, the 3rd to the 10th of them, 0.961).
     * Absent with one timed step. A prediction outside it differs from the run by more than the run's own
     * spread; one inside it cannot be told from the run by this run.
     */
    readonly stepSecondsInterval?: MedianInterval;
    readonly bubbleFractionInterval?: MedianInterval;
    readonly ranks: RankMeasurement[];
    readonly staleness?: { readonly max: number; readonly mean: number };
  };
  readonly numerics: { readonly referenceLosses: number[]; readonly maxRelativeError: number; readonly maxWeightError: number } | null;
  /** Bytes sent per step by the busiest rank, kind by kind: the cost model's elements at 4 bytes, and measured. */
  readonly bytes: Record<CommKind, { readonly predictedBytes: number; readonly measuredBytes: number }>;
  /** The machine's speed during the run, where it was measured (the prediction is made at it). */
  readonly speed?: RunSpeed;
  readonly notes: string[];
}

function bytesComparison(ex: Execution, shape: ClusterShape): ExecuteReport["bytes"] {
  const cost = costModelElements(ex.model, shape, ex.plan);
  const workers = ex.results.filter((r) => r.steps.length > 0);
  const out = {} as Record<CommKind, { predictedBytes: number; measuredBytes: number }>;
  for (const k of COMM_KINDS) {
    const measuredBytes = Math.max(0, ...workers.map((r) => r.steps[r.steps.length - 1]!.comm[k].bytes));
    out[k] = { predictedBytes: 4 * cost[k], measuredBytes };
  }
  return out;
}

/**
 * The timed steps: those after the execution's warm-up steps, and never the first (which pays for building
 * the model and the first compilations) while another is left; all of them when there is one.
 */
export function timed<T>(steps: readonly T[], warmupSteps: number): readonly T[] {
  const skip = Math.min(Math.max(1, warmupSteps), steps.length - 1);
  return skip > 0 ? steps.slice(skip) : steps;
}

/**
 * The run's speed-probe step (RankJob.speedProbe): each rank's median over the timed steps, then the upper
 * median over the ranks that ran it, as calibrate takes its copies' (calibrate.ts concurrencyFigures), and
 * how many ranks ran it at once. Undefined when no rank timed it.
 */
export function runProbe(ex: Execution): { seconds: number; ranks: number } | undefined {
  const perRank = ex.results
    .map((r) => timed(r.steps, ex.warmupSteps).flatMap((s) => (s.probeSeconds === undefined ? [] : [s.probeSeconds])))
    .filter((t) => t.length > 0)
    .map(upperMedian);
  return perRank.length === 0 ? undefined : { seconds: upperMedian(perRank), ranks: perRank.length };
}

/**
 * Floats of gathered weights a ZeRO 3 rank holds at most at once: its largest unit, or with a tied output
 * layer in the embedding's pass (one stage) the embedding, held through the pass (parallel/state.ts
 * heldRoot), and the largest other unit beside it.
 */
function gatheredFloats(ex: Execution, stage: number): number {
  const units = stageUnits(ex.model, ex.plan, stage).flat();
  const size = (u: (typeof units)[number]) => unitSlots(u, ex.plan.tp).size;
  const embed = units.find((u) => u.kind === "embed");
  const heldRoot = ex.model.tiedEmbeddings && ex.plan.pp === 1 && embed !== undefined;
  if (!heldRoot) return Math.max(...units.map(size));
  return size(embed) + Math.max(0, ...units.filter((u) => u !== embed).map(size));
}

/**
 * Each step's pipelined window: the first stage's first pass to the last pass of any stage. A rank's
 * bubble is the window less its own work (its span less its waits on neighbours): the waits inside its
 * span, the fill before its first pass and the drain after its last, as the simulator counts it.
 */
export function pipelineWindows(workers: readonly RankResult[]): { startMs: number; endMs: number }[] {
  return workers[0]!.steps.map((_, i) => ({
    startMs: Math.min(...workers.map((w) => w.steps[i]!.pipelineStartMs)),
    endMs: Math.max(...workers.map((w) => w.steps[i]!.pipelineEndMs)),
  }));
}

export function bubbleOf(s: StepRecord, window: { startMs: number; endMs: number }): number {
  const windowSeconds = (window.endMs - window.startMs) / 1e3;
  if (windowSeconds <= 0) return 0;
  return Math.min(1, Math.max(0, (windowSeconds - (s.pipelineSpanSeconds - s.pipelineIdleSeconds)) / windowSeconds));
}

/** A rank's bubble in each timed step (bubbleOf in that step's pipelined window). */
function stepBubbles(ex: Execution, r: RankResult, windows: readonly { startMs: number; endMs: number }[]): number[] {
  const stepWindows = timed(windows, ex.warmupSteps);
  return timed(r.steps, ex.warmupSteps).map((s, i) => bubbleOf(s, stepWindows[i]!));
}

/** `bubbles`: the rank's bubble in each timed step (stepBubbles). */
function perRank(ex: Execution, r: RankResult, stages: readonly MemoryBreakdown[], bubbles: readonly number[]): RankMeasurement {
  const steps = timed(r.steps, ex.warmupSteps);
  const pick = (f: (s: (typeof steps)[number]) => number) => upperMedian(steps.map(f));
  const comm = Object.fromEntries(COMM_KINDS.map((k) => [k, pick((s) => s.comm[k].seconds)])) as Record<CommKind, number>;
  const idle = pick((s) => COMM_KINDS.reduce((a, k) => a + s.comm[k].idleSeconds, 0));
  const st = r.memory.states;
  const jsHeld = st.gradientsBytes + st.optimizerBytes + (ex.plan.zero === 3 ? st.parametersBytes : 0);
  const predictedActivations = 4 * peakActivationElements(ex.model, ex.plan, r.coords.pp);
  const gathered = ex.plan.zero === 3 ? 4 * gatheredFloats(ex, r.coords.pp) : 0;
  return {
    rank: r.rank,
    stage: r.coords.pp,
    stepSeconds: pick((s) => s.seconds),
    forwardSeconds: pick((s) => total(s.forwardPassSeconds)),
    backwardSeconds: pick((s) => total(s.backwardPassSeconds)),
    optimizerSeconds: pick((s) => s.optimizerSeconds),
    commSeconds: comm,
    idleSeconds: idle,
    bubbleFraction: ex.plan.pp > 1 ? upperMedian(bubbles) : 0,
    memory: {
      ...st,
      activationsBytes: r.memory.peakActivationBytes,
      predictedActivationsBytes: predictedActivations,
      peakBytes: r.memory.peakTensorBytes + jsHeld,
      predictedPeakBytes: st.parametersBytes + st.gradientsBytes + st.optimizerBytes + predictedActivations + gathered,
      costModel: stages[r.coords.pp]!,
    },
  };
}

/**
 * Other processes' share of the cores during a run above which the report says they competed with it:
 * quiet runs of tiny-gpt tp2 on the 2-core VM measured 0 (the process's own CPU time exceeds the machine's
 * busy time by up to 2% from the counters' 10 ms granularity), a run beside a one-core busy loop 38%. (The
 * one-minute load average it replaced counted the previous run's ranks, so it flagged every run made soon
 * after another.)
 */
export const OTHER_WORK_NOTED = 0.1;

/**
 * `prediction`: what the run is compared with (predictOnProfile, or an Estimate on a cluster); its
 * `criticalStage` is the pipeline stage the predicted bubble is of (the simulated bottleneck); its `note`
 * says how it was made. The measured bubble is the run's bottleneck's: the stage busiest outside its
 * pipeline waits, which sets the step. Where the run's bottleneck is another stage than the predicted one
 * (the stages nearly balanced, and one rank slower for the whole run), the predicted one's idle share holds
 * that imbalance rather than the schedule's bubble; the report then notes both (src/executor/TIME-RECORD.md,
 * "Which stage's bubble").
 * `otherWork`: the share of the machine's cores other processes kept busy during the run
 * (machine.ts otherWorkShare), when measured.
 */
export function buildReport(ex: Execution, prediction: ReportedPrediction, cores: number, otherWork?: number): ExecuteReport {
  const { shape, estimate: predicted, criticalStage, note: predictionNote } = prediction;
  const workers = ex.results.filter((r) => r.steps.length > 0);
  // ex.plan has flash attention off: execute() refuses it (validateForExecutor).
  const costs = planCosts(ex.model, shape, ex.plan);
  const stages = Array.from({ length: ex.plan.pp }, (_, i) => stageMemory(ex.model, ex.plan, costs, i));
  const windows = pipelineWindows(workers);
  const bubbles = workers.map((r) => (ex.plan.pp > 1 ? stepBubbles(ex, r, windows) : []));
  const ranks = workers.map((r, i) => perRank(ex, r, stages, bubbles[i]!));
  // The critical stage: the rank busiest outside pipeline waits sets the pace and the bubble. Every rank's
  // bubble is a share of the same pipelined window, so that is the rank with the least bubble. (Not its own
  // step seconds times its busy share: a last stage's step ends with its update while the first stage still
  // runs its backward, which with one micro-batch took a quarter off stage 1's step and named stage 0.)
  const critical = ranks.reduce((a, b) => (b.bubbleFraction < a.bubbleFraction ? b : a), ranks[0]!);
  const predictedCritical = ranks.find((r) => r.stage === criticalStage);
  const timedSteps = workers.map((r) => timed(r.steps, ex.warmupSteps));
  const slowestSteps = timedSteps[0]!.map((_, i) => Math.max(...timedSteps.map((steps) => steps[i]!.seconds)));
  const stepSeconds = upperMedian(slowestSteps);
  const stepInterval = medianInterval(slowestSteps);
  const bubbleInterval = ex.plan.pp > 1 ? medianInterval(bubbles[ranks.indexOf(critical)]!) : undefined;
  const other = prediction.profileBackend; // set only where it is not the run's (predictForRun)
  const notes: string[] = [
    ...(other === undefined ? [] : [`the profile was calibrated on the ${other} backend and this run's ranks ran on ${ex.backend}: the prediction uses the ${other} backend's rates (meshplan calibrate --backend ${ex.backend} measures this one)`]),
    ...(predictionNote === undefined ? [] : [predictionNote]),
  ];
  const speed = prediction.speed;
  if (speed !== undefined) {
    const ratio = `x${(speed.runSeconds / speed.calibrationSeconds).toFixed(2)}`;
    const against = other === undefined
      ? `took ${seconds(speed.runSeconds)} against ${seconds(speed.calibrationSeconds)} at calibration (${ratio})`
      : `took ${seconds(speed.runSeconds)} on ${ex.backend} against ${seconds(speed.calibrationSeconds)} at calibration on ${other} (${ratio}, the two backends' difference more than the machine's speed)`;
    notes.push(`predicted at the machine's speed during the run: the speed probe (${speed.probe}) ${against}; at calibration's speed the step would be predicted at ${seconds(speed.stepSecondsAtCalibration)}`);
  }
  const threads = ex.results.length;
  if (threads > cores) notes.push(`${threads} ranks share ${cores} cores: the timing comparison is not meaningful (ranks wait for a core, not for each other)`);
  else if (otherWork !== undefined && otherWork > OTHER_WORK_NOTED) {
    notes.push(`other processes kept ${(100 * otherWork).toFixed(0)}% of the ${cores} cores busy during the run: they competed with the ranks, so measured times run long`);
  }
  const collectivesNote = heapNote(ex.plan, workers);
  if (collectivesNote !== undefined) notes.push(collectivesNote);
  if (ex.numerics !== undefined) {
    const parted = numericsVerdict(ex.model, ex.losses, ex.numerics).note;
    if (parted !== undefined) notes.push(parted);
  }
  if (ex.plan.pp === 1) notes.push("one pipeline stage: no bubble to compare");
  else if (predictedCritical !== undefined && predictedCritical.stage !== critical.stage) {
    notes.push(`stage ${critical.stage} was the busiest in the run, where stage ${predictedCritical.stage} was predicted to be: the bubble compared is stage ${critical.stage}'s (stage ${predictedCritical.stage} idled ${(100 * predictedCritical.bubbleFraction).toFixed(1)}% of the pipelined window)`);
  }
  const servers = ex.results.filter((r) => r.staleness !== undefined).flatMap((r) => r.staleness!);
  return {
    plan: ex.plan,
    engine: { name: "tfjs", backend: ex.backend, devices: threads, heapCollectives: workers.every((r) => r.heapCollectives) },
    predicted,
    measured: {
      stepSeconds,
      bubbleFraction: ex.plan.pp > 1 ? critical.bubbleFraction : 0,
      peakBytesPerRank: ranks.map((r) => r.memory.peakBytes),
      commBytesPerRank: workers.map((r) => Object.fromEntries(COMM_KINDS.map((k) => [k, r.steps[r.steps.length - 1]!.comm[k].bytes])) as Record<CommKind, number>),
      losses: ex.losses,
      warmupSteps: ex.warmupSteps,
      ...(stepInterval === undefined ? {} : { stepSecondsInterval: stepInterval }),
      ...(bubbleInterval === undefined ? {} : { bubbleFractionInterval: bubbleInterval }),
      ranks,
      ...(servers.length > 0 ? { staleness: { max: Math.max(...servers), mean: mean(servers) } } : {}),
    },
    numerics: ex.numerics === undefined ? null : { referenceLosses: ex.numerics.referenceLosses, maxRelativeError: ex.numerics.maxRelativeError, maxWeightError: ex.numerics.maxWeightError },
    bytes: bytesComparison(ex, shape),
    ...(speed === undefined ? {} : { speed }),
    notes,
  };
}

/** The rank whose measured peak memory is the largest: the one both reports compare memory on. */
export function worstMemoryRank(r: ExecuteReport): ExecuteReport["measured"]["ranks"][number] {
  return r.measured.ranks.reduce((a, b) => (b.memory.peakBytes > a.memory.peakBytes ? b : a), r.measured.ranks[0]!);
}

/**
 * How the tensor- and context-parallel collectives, the expert-parallel all-to-alls and the ZeRO weight
 * gathers reached the other ranks' data (run/tensor-group.ts, parallel/state.ts).
 */
export function heapNote(plan: Plan, workers: readonly RankResult[]): string | undefined {
  const kinds = heapCollectiveKinds(plan);
  if (kinds.length === 0) return undefined;
  const which = kinds.join(" and ");
  if (workers.every((r) => r.heapCollectives)) return `${which} collectives read the other ranks' data in their shared wasm heaps (no copy through the fabric's slots)`;
  const why = workers.find((r) => r.heapNote !== undefined)?.heapNote;
  return `${which} collectives copied their data through the fabric's slots${why === undefined ? "" : ` (${why})`}`;
}
