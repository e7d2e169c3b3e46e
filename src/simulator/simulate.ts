import { assembleEstimate, offPipeline } from "../planner/cost/estimate.js";
import { planCosts, stageInLineCommSeconds, stageMicroBatchSeconds, type PlanCosts } from "../planner/cost/stages.js";
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
  if (input.schedule === "zb-v" && (input.virtualStages !== 2 || input.stages.length < 2)) bad(`zb-v needs 2 virtual stages and 2 or more stages (got ${input.virtualStages}, ${input.stages.length})`);
  if (input.schedule !== "interleaved" && input.schedule !== "zb-v" && input.virtualStages !== 1) bad(`virtualStages = ${input.virtualStages} needs the interleaved schedule`);
  if (input.schedule === "interleaved" && input.microBatches % input.stages.length !== 0) {
    bad(`interleaved needs micro-batches (${input.microBatches}) to be a multiple of the stages (${input.stages.length})`);
  }
  const ps = input.parameterServers;
  if (ps !== undefined && (input.stages.length !== 1 || ps.workers < 1 || ps.servers < 1)) bad("parameter servers need one stage, workers >= 1 and servers >= 1");
}

/** Builds the step's event graph and plays it; `recordMemory` keeps activation memory over time. */
/** The step's event graph, built but not run. */
function build(input: SimInput, recordMemory: boolean) {
  check(input);
  const built = input.parameterServers === undefined ? buildPipeline(input, recordMemory) : buildParameterServers(input, input.parameterServers);
  const { graph, columns } = built.builder.freeze();
  return { built, graph, columns };
}

function play(input: SimInput, recordMemory: boolean) {
  const b = build(input, recordMemory);
  return { ...b, run: runGraph(b.graph) };
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
 * peaks, and the optimizer step's gradient copy held over its operation, agree with it;
 * test/simulator/memory.test.ts).
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
 * Data-parallel collectives (the once-per-step reduction, ZeRO-1's gather, ZeRO-2/3's reduce-scatters and
 * gathers) are sync points too where `dataParallel` is given: the replicas of a stage in different
 * pipelines meet at no other collective, so each drifts by the spread of all the passes it ran since its
 * previous data-parallel collective (from the step's start for the first, since the step ends on a barrier
 * of every rank): independent passes of t_i seconds with log-sd sigma(t_i) give a drift with standard
 * deviation sqrt(sum (sigma(t_i) t_i)^2), and the collective waits for the slowest replica after that
 * drift. The wait counts as data-parallel communication where the collective is exposed.
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
  /** Mean seconds a member waits at a `group` collective of `members` ranks for the slowest, after `segmentSeconds` of work each. */
  readonly syncWaitSeconds?: (segmentSeconds: number, members: number, group: SyncGroup) => number;
  /** Data-parallel collectives as sync points; absent: they do not wait. */
  readonly dataParallel?: DataParallelSync;
}

/** How the replicas of a stage wait for one another at their data-parallel collectives. */
export interface DataParallelSync {
  /**
   * Replicas that drift apart between data-parallel collectives: dp (a replica's cp ranks, in the same
   * collectives, meet at every layer's K and V exchange and stay together).
   */
  readonly members: number;
  /** Standard deviation of the logarithm of one pass's time, for a pass of that many seconds (measured). */
  readonly passLogSdAt: (seconds: number) => number;
  /** Mean seconds a member waits for the slowest of `members` whose arrivals spread with this standard deviation. */
  readonly waitSeconds: (driftSdSeconds: number, members: number) => number;
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

export type SyncGroup = "tp" | "cp" | "ep";

export interface JitteredSimulation {
  /** The Estimate of the median sample (by step time). */
  readonly estimate: Estimate;
  /** Every sample's step, shortest first. */
  readonly stepSeconds: readonly number[];
  /** The stage the Estimate is of: the critical one without jitter. */
  readonly criticalStage: number;
}

/** The mean waits at collectives: added to each op (passes for tp and cp, data-parallel ops for dp), and the tp and cp ones in all per simulated rank. */
interface ReplicaWaits {
  readonly perOp: Float64Array;
  readonly perRank: Record<SyncGroup, Float64Array>;
}

/**
 * The mean waits at collectives (the same in every sample): at the tp, cp and ep sync points inside passes
 * (passWaits) and at the data-parallel ops (dataParallelWaits). Undefined where nothing waits.
 */
function replicaWaits(graph: Graph, columns: OpColumns, stages: readonly { readonly role: string }[], j: PassJitter): ReplicaWaits | undefined {
  const waitAt = j.syncWaitSeconds;
  const passes = j.syncs !== undefined && waitAt !== undefined;
  const dp = j.dataParallel !== undefined && j.dataParallel.members > 1 ? j.dataParallel : undefined;
  if (!passes && dp === undefined) return undefined;
  const perOp = new Float64Array(graph.size);
  const perRank: Record<SyncGroup, Float64Array> = { tp: new Float64Array(stages.length), cp: new Float64Array(stages.length), ep: new Float64Array(stages.length) };
  if (passes) passWaits(graph, columns, stages, j.syncs!, waitAt!, perOp, perRank);
  if (dp !== undefined) dataParallelWaits(graph, columns, stages, dp, perOp);
  return { perOp, perRank };
}

type WaitAt = (segmentSeconds: number, members: number, group: SyncGroup) => number;

/**
 * The waits at the tp, cp and ep collectives inside passes (replicaWaits). A pass that runs as several ops
 * (interleaved chunks, pieces between data-parallel buckets) shares its stage's sync points for that
 * micro-batch among them in proportion to their time, rounded cumulatively so the pass keeps its count;
 * its segments are the whole pass's time over its count plus one.
 */
function passWaits(
  graph: Graph, columns: OpColumns, stages: readonly { readonly role: string }[], syncs: readonly StageSyncs[], waitAt: WaitAt,
  perOp: Float64Array, perRank: Record<SyncGroup, Float64Array>,
): void {
  const pointsOf = (op: number) => {
    const r = columns.rank[op]!;
    const s = stages[r]?.role === "stage" ? syncs[r] : undefined;
    const k = columns.kind[op];
    const points = k === OpKind.forward ? s?.forward : k === OpKind.backward ? s?.backward : undefined;
    return points?.filter((p) => p.members > 1 && p.count > 0);
  };
  const passes = new Map<string, number[]>();
  for (let op = 0; op < graph.size; op++) {
    if ((pointsOf(op)?.length ?? 0) === 0) continue;
    const key = `${columns.rank[op]} ${columns.kind[op]} ${columns.microBatch[op]}`;
    const ops = passes.get(key);
    if (ops === undefined) passes.set(key, [op]);
    else ops.push(op);
  }
  for (const ops of passes.values()) {
    const points = pointsOf(ops[0]!)!;
    const seconds = ops.reduce((a, op) => a + graph.durationSeconds[op]!, 0);
    const segmentSeconds = seconds / (1 + points.reduce((a, p) => a + p.count, 0));
    let done = 0;
    for (const op of ops) {
      const before = done / seconds;
      done += graph.durationSeconds[op]!;
      for (const p of points) {
        const wait = (Math.round(p.count * (done / seconds)) - Math.round(p.count * before)) * waitAt(segmentSeconds, p.members, p.group);
        perOp[op]! += wait;
        perRank[p.group][columns.rank[op]!]! += wait;
      }
    }
  }
}

/**
 * The waits at data-parallel collectives (replicaWaits): each stage's ops in program order (the order the
 * builder emits them), the variance of its passes' times summed since its previous data-parallel op, and
 * the op waits for the slowest of the replicas after a drift of that standard deviation. Meant for
 * collectives that hold the replicas (exposed or in line, as the executor runs them): overlapped buckets
 * are taken in the order the builder emits them, a prefetched gather after the piece it runs beside.
 */
function dataParallelWaits(graph: Graph, columns: OpColumns, stages: readonly { readonly role: string }[], dp: DataParallelSync, perOp: Float64Array): void {
  const variance = new Float64Array(stages.length);
  for (let op = 0; op < graph.size; op++) {
    const r = columns.rank[op]!;
    if (stages[r]?.role !== "stage") continue;
    const k = columns.kind[op];
    if (k === OpKind.forward || k === OpKind.backward || k === OpKind.weight) {
      const t = graph.durationSeconds[op]!;
      variance[r]! += (dp.passLogSdAt(t) * t) ** 2;
    } else if (k === OpKind.dpReduce || k === OpKind.dpGather) {
      perOp[op]! += dp.waitSeconds(Math.sqrt(variance[r]!), dp.members);
      variance[r] = 0;
    }
  }
}

/** The graph with each pass op taking its time times `factor(op)` (1 when absent), and every op its mean waits. */
function withPassTimes(graph: Graph, columns: OpColumns, waits: ReplicaWaits | undefined, factor?: (seconds: number) => number): Graph {
  const durationSeconds = graph.durationSeconds.slice();
  for (let op = 0; op < graph.size; op++) {
    const k = columns.kind[op]!;
    const pass = k === OpKind.forward || k === OpKind.backward || k === OpKind.weight;
    if (pass && factor !== undefined) durationSeconds[op]! *= factor(durationSeconds[op]!);
    if (waits !== undefined) durationSeconds[op]! += waits.perOp[op]!;
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
  const { built, graph, columns } = build(input, false);
  const waits = replicaWaits(graph, columns, built.ranks, jitter);
  // The stage the exact schedule makes critical, with the waits at collectives (which differ by stage) in it.
  const exactGraph = waits === undefined ? graph : withPassTimes(graph, columns, waits);
  const exact = { graph: exactGraph, run: runGraph(exactGraph) };
  const stage = criticalStage(built.ranks, summarize(built, opTable(exact.graph, columns, exact.run), exact.run).criticalRank);
  const factor = (seconds: number) => {
    const sigma = jitter.logSdAt(seconds);
    return Math.exp(sigma * jitter.normal() - (sigma * sigma) / 2);
  };
  const samples = Array.from({ length: jitter.samples }, () => {
    const g = withPassTimes(graph, columns, waits, factor);
    const r = runGraph(g);
    return summarize(built, opTable(g, columns, r), r);
  });
  samples.sort((a, b) => a.stepSeconds - b.stepSeconds);
  const stageWaits = { tp: waits?.perRank.tp[stage] ?? 0, cp: waits?.perRank.cp[stage] ?? 0, ep: waits?.perRank.ep[stage] ?? 0 };
  return {
    estimate: estimateFrom(model, shape, plan, costs, samples[Math.floor(samples.length / 2)]!, stage, stageWaits),
    stepSeconds: samples.map((s) => s.stepSeconds),
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

function estimateFrom(model: ModelSpec, shape: ClusterShape, plan: Plan, costs: PlanCosts, step: StepSummary, stage: number, waits: Record<SyncGroup, number> = { tp: 0, cp: 0, ep: 0 }): Estimate {
  const x = step.exposed;
  const critical = costs.stages[stage]!;
  // The critical stage's own work plus its idle time; summation noise must not make the bubble negative.
  // Blocking sends and receives and in-line dp collectives run on the compute stream and the timeline counts them as
  // pipeline and data-parallel traffic (x.ppSeconds, x.dpSeconds).
  // Waits for slower replicas at tp, cp and ep collectives (jittered steps only) count as that communication,
  // as a rank measures its time in a collective, not as bubble.
  const workSeconds = costs.microBatches * (stageMicroBatchSeconds(critical) - stageInLineCommSeconds(critical)) + waits.tp + waits.cp + waits.ep;
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
  if (waits.tp === 0 && waits.cp === 0 && waits.ep === 0) return e;
  const b = e.time.breakdown;
  return { ...e, time: { ...e.time, breakdown: { ...b, tpCommSeconds: b.tpCommSeconds + waits.tp, cpCommSeconds: b.cpCommSeconds + waits.cp, epCommSeconds: b.epCommSeconds + waits.ep } } };
}
