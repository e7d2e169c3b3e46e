import { assembleEstimate, offPipeline } from "../planner/cost/estimate.js";
import { planCosts, stageMicroBatchSeconds, type PlanCosts } from "../planner/cost/stages.js";
import type { Estimate } from "../planner/cost/types.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import { analyze, opTable, summarize, type StepSummary } from "./analyze.js";
import { buildPipeline } from "./build-pipeline.js";
import { buildParameterServers } from "./build-ps.js";
import { runGraph } from "./engine.js";
import type { Graph } from "./graph.js";
import { simInputFromCosts } from "./from-costs.js";
import { OpKind, type SimInput, type Timeline } from "./types.js";

export interface Simulation {
  /** The contract's Estimate, with its time and pipeline fields measured on the simulated timeline. */
  readonly estimate: Estimate;
  readonly timeline: Timeline;
}

function check(input: SimInput): void {
  const bad = (what: string) => {
    throw new RangeError(`simulator input: ${what}`);
  };
  if (input.stages.length < 1) bad("at least one stage");
  if (!Number.isInteger(input.microBatches) || input.microBatches < 1) bad(`microBatches = ${input.microBatches}, want an integer >= 1`);
  if (!Number.isInteger(input.virtualStages) || input.virtualStages < 1) bad(`virtualStages = ${input.virtualStages}, want an integer >= 1`);
  if (input.schedule !== "interleaved" && input.virtualStages !== 1) bad(`virtualStages = ${input.virtualStages} needs the interleaved schedule`);
  if (input.schedule === "interleaved" && input.microBatches % input.stages.length !== 0) {
    bad(`interleaved needs micro-batches (${input.microBatches}) to be a multiple of the stages (${input.stages.length})`);
  }
  const ps = input.parameterServers;
  if (ps !== undefined && (input.stages.length !== 1 || ps.workers < 1 || ps.servers < 1)) bad("parameter servers need one stage, workers >= 1 and servers >= 1");
}

/** Builds the step's event graph and plays it; `recordMemory` keeps activation memory over time. */
function play(input: SimInput, recordMemory: boolean) {
  check(input);
  const built = input.parameterServers === undefined ? buildPipeline(input, recordMemory) : buildParameterServers(input, input.parameterServers);
  const { graph, columns } = built.builder.freeze();
  return { built, graph, columns, run: runGraph(graph) };
}

/** The stage whose costs the Estimate is assembled from: the critical rank, or stage 0 when a server is. */
function criticalStage(ranks: readonly { readonly role: string }[], criticalRank: number): number {
  return ranks[criticalRank]!.role === "stage" ? criticalRank : 0;
}

/** One step, event by event, from explicit per-stage costs (the cost model's, or synthetic ones in tests). */
export function simulateInput(input: SimInput): Timeline {
  const { built, graph, columns, run } = play(input, true);
  return analyze(input.schedule, built, graph, columns, run);
}

/**
 * Simulates one training step of a plan and reports it in the contract's terms: the step time is the
 * critical path; compute and tp/cp/ep are the critical stage's own; pipeline transfers, data-parallel
 * traffic, the optimizer and the bubble are what that stage waited for (so the breakdown adds up to
 * stepSeconds, as assembleEstimate builds it). Memory stays the cost model's (the simulated activation
 * peaks agree with it; test/simulator/memory.test.ts).
 */
export function simulate(model: ModelSpec, shape: ClusterShape, plan: Plan): Simulation {
  const costs = planCosts(model, shape, plan);
  const timeline = simulateInput(simInputFromCosts(model, shape, plan, costs));
  return { estimate: estimateFrom(model, shape, plan, costs, timeline, criticalStage(timeline.ranks, timeline.criticalRank)), timeline };
}

/**
 * Pass-time jitter: every forward, backward and weight-gradient pass takes its cost-model time t times a
 * log-normal factor exp(sigma z - sigma^2 / 2), z a standard normal and sigma = logSdAt(t), so the mean pass
 * keeps the cost model's time and only its spread is added. Where ranks wait on one another (a stage on its
 * neighbour's activation or gradient) the spread turns into waits a step with exact pass times never has.
 * A stage's data-, tensor- and context-parallel replicas stay one simulated rank, so waits between replicas
 * are not modelled.
 */
export interface PassJitter {
  /** Standard deviation of the logarithm of a pass's time, for a pass of that many seconds. */
  readonly logSdAt: (seconds: number) => number;
  /** Simulated steps; the one with the median step time is reported. */
  readonly samples: number;
  /** Standard normal draws, seeded by the caller so that a prediction repeats; a run consumes them, so a
   * PassJitter serves one simulateJittered call (profileJitter makes a fresh one each time). */
  readonly normal: () => number;
}

export interface JitteredSimulation {
  /** The Estimate of the median sample (by step time). */
  readonly estimate: Estimate;
  /** Every sample's step, shortest first. */
  readonly stepSeconds: readonly number[];
  /** The stage the Estimate is of: the critical one without jitter. */
  readonly criticalStage: number;
}

function jittered(graph: Graph, kinds: Uint8Array, j: PassJitter): Graph {
  const durationSeconds = graph.durationSeconds.slice();
  for (let op = 0; op < graph.size; op++) {
    const k = kinds[op]!;
    if (k !== OpKind.forward && k !== OpKind.backward && k !== OpKind.weight) continue;
    const sigma = j.logSdAt(durationSeconds[op]!);
    durationSeconds[op]! *= Math.exp(sigma * j.normal() - (sigma * sigma) / 2);
  }
  return { ...graph, durationSeconds };
}

/**
 * simulate() with pass-time jitter: `samples` steps, each with fresh factors; the step with the median time
 * gives the Estimate (as simulateEstimate, without the per-rank timeline). The Estimate is assembled for the
 * stage that is critical without jitter (the one whose bubble the exact schedule defines), so its bubble is
 * that stage's idle share.
 */
export function simulateJittered(model: ModelSpec, shape: ClusterShape, plan: Plan, jitter: PassJitter): JitteredSimulation {
  if (!Number.isInteger(jitter.samples) || jitter.samples < 1) throw new RangeError(`pass jitter: samples = ${jitter.samples}; want an integer >= 1`);
  const costs = planCosts(model, shape, plan);
  const input = simInputFromCosts(model, shape, plan, costs);
  const { built, graph, columns, run } = play(input, false);
  const stage = criticalStage(built.ranks, summarize(built, opTable(graph, columns, run), run).criticalRank);
  const samples = Array.from({ length: jitter.samples }, () => {
    const g = jittered(graph, columns.kind, jitter);
    const r = runGraph(g);
    return summarize(built, opTable(g, columns, r), r);
  });
  samples.sort((a, b) => a.spanSeconds - b.spanSeconds);
  return {
    estimate: estimateFrom(model, shape, plan, costs, samples[Math.floor(samples.length / 2)]!, stage),
    stepSeconds: samples.map((s) => s.spanSeconds),
    criticalStage: stage,
  };
}

/**
 * The same step and the same Estimate as simulate(), without the per-rank timeline (busy time per stream,
 * activation memory over time) that only a displayed timeline needs: what the planner's final ranking
 * runs on its shortlist.
 */
export function simulateEstimate(model: ModelSpec, shape: ClusterShape, plan: Plan, cache?: StepCache): Estimate {
  const costs = planCosts(model, shape, plan);
  const input = simInputFromCosts(model, shape, plan, costs);
  // The step depends on the simulator's input alone: plans with the same input (another split of dp, cp
  // and micro-batch with the same per-stage costs, say) share one run.
  const key = cache === undefined ? "" : JSON.stringify(input);
  let step = cache?.get(key);
  if (step === undefined) {
    const { built, graph, columns, run } = play(input, false);
    const summary = summarize(built, opTable(graph, columns, run), run);
    step = { summary, stage: criticalStage(built.ranks, summary.criticalRank) };
    cache?.set(key, step);
  }
  return estimateFrom(model, shape, plan, costs, step.summary, step.stage);
}

/** Simulated steps by their input, for simulateEstimate to reuse (one cache per model and cluster). */
export type StepCache = Map<string, { readonly summary: StepSummary; readonly stage: number }>;

function estimateFrom(model: ModelSpec, shape: ClusterShape, plan: Plan, costs: PlanCosts, step: StepSummary, stage: number): Estimate {
  const x = step.exposed;
  const critical = costs.stages[stage]!;
  // The critical stage's own work plus its idle time; summation noise must not make the bubble negative.
  // Blocking sends run on the compute stream and the timeline counts them as pipeline traffic (x.ppSeconds).
  const workSeconds = costs.microBatches * (stageMicroBatchSeconds(critical) - critical.blockingSendSeconds);
  const idleSeconds = step.stepSeconds - x.ppSeconds - x.dpSeconds - x.optimizerSeconds - workSeconds;
  const bubbleSeconds = idleSeconds > 1e-12 * step.stepSeconds ? idleSeconds : 0;
  const pipelineSeconds = workSeconds + bubbleSeconds;
  const off = {
    ...offPipeline(shape, plan, costs, pipelineSeconds, critical),
    ppCommSeconds: x.ppSeconds,
    dpCommSeconds: x.dpSeconds,
    optimizerSeconds: x.optimizerSeconds,
  };
  return assembleEstimate(model, shape, plan, costs, {
    pipelineSeconds,
    bubbleSeconds,
    critical,
    off,
  });
}
