import { assembleEstimate, offPipeline } from "../planner/cost/estimate.js";
import { planCosts, stageMicroBatchSeconds, type PlanCosts } from "../planner/cost/stages.js";
import type { Estimate } from "../planner/cost/types.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import { analyze, opTable, summarize, type StepSummary } from "./analyze.js";
import { buildPipeline } from "./build-pipeline.js";
import { buildParameterServers } from "./build-ps.js";
import { runGraph } from "./engine.js";
import type { Graph, OpColumns } from "./graph.js";
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
 *
 * A stage's replicas stay one simulated rank. Where they synchronise inside a pass (`syncs`: tensor- and
 * context-parallel collectives, which block until every member of their group arrives), the pass is cut
 * into equal segments at its sync points and each collective adds the mean wait for the slowest member
 * after a segment of that length (`syncWaitSeconds`, measured). Segments are taken as equally long.
 * Data-parallel collectives (the once-per-step reduction, ZeRO-2/3's reduce-scatters and gathers) are not
 * taken as sync points.
 */
export interface PassJitter {
  /** Standard deviation of the logarithm of a pass's time, for a pass of that many seconds. */
  readonly logSdAt: (seconds: number) => number;
  /** Simulated steps; the one with the median step time is reported. */
  readonly samples: number;
  /** Standard normal draws, seeded by the caller so that a prediction repeats; a run consumes them, so a
   * PassJitter serves one simulateJittered call (profileJitter makes a fresh one each time). */
  readonly normal: () => number;
  /** Per pipeline stage, the blocking collectives inside one micro-batch's passes; none where absent. */
  readonly syncs?: readonly StageSyncs[];
  /** Mean seconds a member waits at a collective of `members` ranks for the slowest, after `segmentSeconds` of work each. */
  readonly syncWaitSeconds?: (segmentSeconds: number, members: number) => number;
}

/** The blocking collectives of one micro-batch's forward and backward passes (all chunks) on one stage. */
export interface StageSyncs {
  readonly forward: readonly SyncPoints[];
  readonly backward: readonly SyncPoints[];
}

/** `count` collectives over groups of `members` ranks, of one parallel dimension. */
export interface SyncPoints {
  readonly group: SyncGroup;
  readonly members: number;
  readonly count: number;
}

export type SyncGroup = "tp" | "cp";

export interface JitteredSimulation {
  /** The Estimate of the median sample (by step time). */
  readonly estimate: Estimate;
  /** Every sample's step, shortest first. */
  readonly stepSeconds: readonly number[];
  /** The stage the Estimate is of: the critical one without jitter. */
  readonly criticalStage: number;
}

/** A pass op's sync points (its share of its pass's) and the length of the pass's segments. */
interface OpSyncs {
  readonly points: readonly SyncPoints[];
  readonly segmentSeconds: number;
}

/**
 * For each pass op, its share of its stage's sync points for that micro-batch's pass, where a pass runs as
 * several ops (interleaved chunks, pieces between data-parallel buckets): shared in proportion to the
 * ops' time, rounded cumulatively so the pass keeps its count; segments are the whole pass's over its
 * count plus one.
 */
function opSyncs(graph: Graph, columns: OpColumns, stages: readonly { readonly role: string }[], syncs: readonly StageSyncs[]): (OpSyncs | undefined)[] {
  const passes = new Map<string, number[]>();
  const pointsOf = (op: number) => {
    const r = columns.rank[op]!;
    const s = stages[r]?.role === "stage" ? syncs[r] : undefined;
    const k = columns.kind[op];
    const points = k === OpKind.forward ? s?.forward : k === OpKind.backward ? s?.backward : undefined;
    return points?.filter((p) => p.members > 1 && p.count > 0);
  };
  for (let op = 0; op < graph.size; op++) {
    if ((pointsOf(op)?.length ?? 0) === 0) continue;
    const key = `${columns.rank[op]} ${columns.kind[op]} ${columns.microBatch[op]}`;
    const ops = passes.get(key);
    if (ops === undefined) passes.set(key, [op]);
    else ops.push(op);
  }
  const out: (OpSyncs | undefined)[] = new Array(graph.size).fill(undefined);
  for (const ops of passes.values()) {
    const points = pointsOf(ops[0]!)!;
    const seconds = ops.reduce((a, op) => a + graph.durationSeconds[op]!, 0);
    const segmentSeconds = seconds / (1 + points.reduce((a, p) => a + p.count, 0));
    let done = 0;
    for (const op of ops) {
      const before = done / seconds;
      done += graph.durationSeconds[op]!;
      const after = done / seconds;
      out[op] = { points: points.map((p) => ({ ...p, count: Math.round(p.count * after) - Math.round(p.count * before) })), segmentSeconds };
    }
  }
  return out;
}

/** Seconds each simulated rank spent waiting for slower replicas at its collectives, by group. */
type ReplicaWaits = Record<SyncGroup, Float64Array>;

/**
 * One sample's pass times: each pass its own log-normal factor (none when `noise` is false), plus the
 * mean wait at each of its sync points after a segment of its pass.
 */
function jittered(graph: Graph, columns: OpColumns, j: PassJitter, syncs: readonly (OpSyncs | undefined)[], ranks: number, noise = true): { graph: Graph; waits: ReplicaWaits } {
  const durationSeconds = graph.durationSeconds.slice();
  const waits: ReplicaWaits = { tp: new Float64Array(ranks), cp: new Float64Array(ranks) };
  for (let op = 0; op < graph.size; op++) {
    const k = columns.kind[op]!;
    if (k !== OpKind.forward && k !== OpKind.backward && k !== OpKind.weight) continue;
    if (noise) {
      const sigma = j.logSdAt(durationSeconds[op]!);
      durationSeconds[op]! *= Math.exp(sigma * j.normal() - (sigma * sigma) / 2);
    }
    const s = syncs[op];
    if (s === undefined || j.syncWaitSeconds === undefined) continue;
    for (const p of s.points) {
      const wait = p.count * j.syncWaitSeconds(s.segmentSeconds, p.members);
      durationSeconds[op]! += wait;
      waits[p.group][columns.rank[op]!]! += wait;
    }
  }
  return { graph: { ...graph, durationSeconds }, waits };
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
  const syncs = jitter.syncs === undefined ? [] : opSyncs(graph, columns, built.ranks, jitter.syncs);
  // The stage the exact schedule makes critical, with the (deterministic) waits at collectives in it.
  const exact = syncs.length === 0 ? { graph, run } : (() => {
    const g = jittered(graph, columns, jitter, syncs, built.ranks.length, false).graph;
    return { graph: g, run: runGraph(g) };
  })();
  const stage = criticalStage(built.ranks, summarize(built, opTable(exact.graph, columns, exact.run), exact.run).criticalRank);
  const samples = Array.from({ length: jitter.samples }, () => {
    const { graph: g, waits } = jittered(graph, columns, jitter, syncs, built.ranks.length);
    const r = runGraph(g);
    return { summary: summarize(built, opTable(g, columns, r), r), waits: { tp: waits.tp[stage]!, cp: waits.cp[stage]! } };
  });
  samples.sort((a, b) => a.summary.spanSeconds - b.summary.spanSeconds);
  const median = samples[Math.floor(samples.length / 2)]!;
  return {
    estimate: estimateFrom(model, shape, plan, costs, median.summary, stage, median.waits),
    stepSeconds: samples.map((s) => s.summary.spanSeconds),
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

function estimateFrom(model: ModelSpec, shape: ClusterShape, plan: Plan, costs: PlanCosts, step: StepSummary, stage: number, waits: Record<SyncGroup, number> = { tp: 0, cp: 0 }): Estimate {
  const x = step.exposed;
  const critical = costs.stages[stage]!;
  // The critical stage's own work plus its idle time; summation noise must not make the bubble negative.
  // Blocking sends run on the compute stream and the timeline counts them as pipeline traffic (x.ppSeconds).
  // Waits for slower replicas at tp and cp collectives (jittered steps only) count as that communication,
  // as a rank measures its time in a collective, not as bubble.
  const workSeconds = costs.microBatches * (stageMicroBatchSeconds(critical) - critical.blockingSendSeconds) + waits.tp + waits.cp;
  const idleSeconds = step.stepSeconds - x.ppSeconds - x.dpSeconds - x.optimizerSeconds - workSeconds;
  const bubbleSeconds = idleSeconds > 1e-12 * step.stepSeconds ? idleSeconds : 0;
  const pipelineSeconds = workSeconds + bubbleSeconds;
  const off = {
    ...offPipeline(shape, plan, costs, pipelineSeconds, critical),
    ppCommSeconds: x.ppSeconds,
    dpCommSeconds: x.dpSeconds,
    optimizerSeconds: x.optimizerSeconds,
  };
  const e = assembleEstimate(model, shape, plan, costs, {
    pipelineSeconds,
    bubbleSeconds,
    critical,
    off,
  });
  if (waits.tp === 0 && waits.cp === 0) return e;
  const b = e.time.breakdown;
  return { ...e, time: { ...e.time, breakdown: { ...b, tpCommSeconds: b.tpCommSeconds + waits.tp, cpCommSeconds: b.cpCommSeconds + waits.cp } } };
}
