import type { ClusterShape, ClusterSpec, GpuSpec, LinkSpec, ModelSpec, Plan } from "../../spec/types.js";
import { simulate, simulateJittered, type PassJitter, type StageSyncs, type SyncGroup } from "../../simulator/simulate.js";
import { passCalls } from "./accounting.js";
import { runProbe, type ReportedPrediction } from "./report.js";
import type { Execution } from "../execute.js";
import type { SyncWaitPoint } from "./waits.js";
import { expectedMaxOfNormals, lineFit, mean, total, type MeasuredPassCost, type PassCost } from "./stats.js";
import { mulberry32, standardNormal } from "../model/random.js";
import type { Estimate } from "../../planner/cost/types.js";
import { withPricedVPasses } from "../../planner/cost/compute.js";
import type { SpeedProbeSpec } from "../run/speed-probe.js";
import type { LossCost } from "./loss.js";
import { otherBackend } from "./machine.js";
import type { LayerPassSeconds, LayerPassShares } from "./passes.js";

/**
 * A device profile: what `meshplan calibrate` measured on this machine for one executor rank, and the
 * cost model's constants fitted to it. As a cluster it is one "node" of ranks joined by shared memory.
 */
export interface DeviceProfile {
  readonly version: 1;
  readonly measuredAt: string;
  readonly machine: { readonly cpus: number; readonly cpuModel: string; readonly node: string; readonly platform: string };
  readonly backend: string;
  /** Square float32 matrix products n x n x n on one rank: median seconds each. */
  readonly matmul: readonly { readonly n: number; readonly seconds: number; readonly flopsPerSecond: number }[];
  /** Fastest measured matmul rate: the roofline's peak. */
  readonly peakFlopsPerSecond: number;
  /**
   * Fitted: the fixed cost of one GEMM as the cost model counts it (its matmulOverheadSeconds), which
   * carries the dispatch of the other kernels around each product too (calibrate.ts fitConstants).
   */
  readonly opOverheadSeconds: number;
  /** Fitted with it: the rate of element-wise work in the cost model's 16-bit bytes (its hbm x memoryBandwidth). */
  readonly elementwiseBytesPerSecond: number;
  /**
   * Measured: the optimizer step as the executor runs it (Adam over float32 arrays, the gradient cleared,
   * the new weights made a tensor), in the cost model's bytes per parameter (2 x 12 + 4 + 2, stages.ts);
   * absent in older profiles (then the element-wise rate).
   */
  readonly optimizerBytesPerSecond?: number;
  /**
   * Measured: the executor's cross-entropy (model/ends.ts) forward and backward on one rank at two sizes
   * (loss.ts lossCost): a fixed time per pass and a rate in the cost model's bytes per logit
   * (LOSS_BYTES_PER_LOGIT each way, compute.ts headTimes); absent in older profiles (then no fixed time and
   * the element-wise rate).
   */
  readonly loss?: LossCost;
  /**
   * Measured: the executor's input embedding (model/ends.ts) forward, B and W on one rank at each fit shape
   * (passes.ts embeddingPassSeconds), against the cost model's bytes of its passes (compute.ts
   * embeddingBytes), and the line through them (stats.ts passCostFrom): a fixed time per pass and a rate
   * (GpuEfficiency.embeddingOverheadSeconds, embeddingBandwidth). Absent in older profiles: the
   * layers' element-wise rate, which priced the table's gradient 5x over its time
   * (src/executor/TIME-RECORD.md, "The ends measured").
   */
  readonly embedding?: MeasuredPassCost;
  /**
   * Measured: a mixture of experts' routing (model/routing.ts: softmax, route, dispatch, combine and their
   * backward) on one rank at each fit shape with tiny-moe's experts (routing.ts routingPassSeconds), against
   * the cost model's bytes of its passes (planner/cost/moe-routing.ts moeRoutingBytes), and the line through
   * them: a fixed time per pass and a rate (GpuEfficiency.moeRoutingOverheadSeconds, moeRoutingBandwidth).
   * Absent in older profiles: the element-wise rate and no fixed time, which priced tiny-moe's routing at
   * about a tenth of its time.
   */
  readonly moeRouting?: MeasuredPassCost;
  /**
   * Measured: one layer's forward, B and W on one rank (passes.ts layerPassSeconds) at each fit shape, and
   * the median share of each pass in their sum, which splits the cost model's layer time between the
   * passes (GpuEfficiency.layerPassShares): what ZB-H1's and ZB-V's orders and idle depend on. Absent in
   * profiles written before 2026-11-24: the roofline's split.
   */
  readonly layerPasses?: {
    readonly shares: LayerPassShares;
    readonly measured: readonly ({ readonly shape: string } & LayerPassSeconds)[];
  };
  /**
   * Measured: what one layer's forward takes more when its weights are new tensors (passes.ts
   * firstUseSeconds: TensorFlow.js's wasm backend creates and packs an XNNPACK operator for each weight
   * it has not multiplied before), at each fit shape with the layer's GEMM weight elements, and the
   * seconds per element fitted through them (GpuEfficiency.weightFirstUseSecondsPerParam): every chunk's
   * first forward of a step pays it (every forward under ZeRO 3). Absent in profiles written before
   * 2026-11-24: not priced.
   */
  readonly weightFirstUse?: {
    readonly secondsPerParam: number;
    readonly measured: readonly { readonly shape: string; readonly params: number; readonly seconds: number }[];
  };
  /** One thread's memory copy of 64 MiB (TypedArray.set). */
  readonly memcpyBytesPerSecond: number;
  /** Shared-memory all-reduce between two ranks, alpha-beta fit: bus bytes per second and latency per step. */
  readonly collectiveBytesPerSecond: number;
  readonly collectiveLatencySeconds: number;
  /** Single-rank training steps the constants were fitted to: measured and refitted seconds. */
  readonly fit: readonly { readonly shape: string; readonly measuredSeconds: number; readonly fittedSeconds: number }[];
  /**
   * The first fit shape's one-rank training step run as `ranks` independent copies at once (one per core,
   * each in a worker thread as execute runs ranks): `slowdown` is how much longer it takes than the fitted
   * constants predict for it on one rank (`fittedSeconds`), so that predictions for that many ranks land on
   * what a worker computes with every core busy (shared caches, memory bandwidth, SMT siblings), whatever
   * speed the calibrating thread happened to measure the fit shapes at. `aloneSeconds`: the same step in
   * one worker alone, kept for the record (profiles written before `fittedSeconds` divided by it instead).
   * Absent in profiles written before it was measured: no slowdown. `probe`: that step's model and plan
   * (and its fit shape's name, absent in the profiles of the first day it was written: fitShapeName gives
   * it), which `execute` runs again during a run to measure the machine's speed then (atRunSpeed); absent
   * in profiles written before 2026-11-22.
   */
  readonly concurrency?: {
    readonly ranks: number;
    readonly aloneSeconds: number;
    readonly concurrentSeconds: number;
    readonly fittedSeconds?: number;
    readonly slowdown: number;
    readonly probe?: SpeedProbeSpec & { readonly shape?: string };
  };
  /**
   * Measured: how much one pass's time varies while every core runs a rank (calibrate.ts measurePassJitter):
   * for the forwards (each step's first left out: it carries the new weights' first use, priced apart) and
   * for the backwards of one copy of the `shape` step per core, their mean seconds and the standard
   * deviation of the log of each one's time about its step's mean (`samples` passes in all; calibrate.ts
   * passSpreads). `ranks`: the copies run at once (absent in older profiles: the machine's cores).
   * `fewerRanks`: the same with FEWER_RANKS copies, where the machine has more cores (runs of fewer ranks
   * than cores take the spread between the two, passSpreadAt). Absent in older profiles: exact pass times.
   */
  readonly passJitter?: PassSpreads & {
    readonly shape: string;
    readonly ranks?: number;
    readonly fewerRanks?: PassSpreads & { readonly ranks: number };
  };
  /**
   * Measured: the mean wait of a rank at a collective of two while every core runs a rank, after segments
   * of work of several lengths (waits.ts collectiveWaits). `fewerRanks`: the same with one pair of ranks
   * alone, where the machine has more cores (syncWaitsAt blends the two by a run's ranks). Absent in older
   * profiles: collectives inside a pass cost their transfer only.
   */
  readonly syncWaits?: {
    readonly members: number;
    readonly ranks: number;
    readonly points: readonly SyncWaitPoint[];
    readonly fewerRanks?: { readonly ranks: number; readonly points: readonly SyncWaitPoint[] };
  };
}

/** One measurement of the pass-time spread: `samples` passes, forwards and backwards. */
export interface PassSpreads {
  readonly samples: number;
  readonly forward: PassSpread;
  readonly backward: PassSpread;
}

export interface PassSpread {
  readonly meanSeconds: number;
  readonly logSd: number;
}

/**
 * How much slower each of `ranks` concurrent ranks computes than one alone: 1 for one rank, the measured
 * slowdown with as many ranks as were measured (all cores), linear in between, and no further beyond
 * (ranks beyond the cores time-share them; the report says such timings are not meaningful).
 */
export function concurrencySlowdown(p: DeviceProfile, ranks: number): number {
  const c = p.concurrency;
  if (c !== undefined && ranks === c.ranks) return c.slowdown;
  if (c === undefined || ranks <= 1 || c.ranks <= 1) return 1;
  return 1 + ((c.slowdown - 1) * (Math.min(ranks, c.ranks) - 1)) / (c.ranks - 1);
}

/**
 * The profile at the speed a run had: the speed probe (calibrate's concurrency step, `concurrency.probe`)
 * took `probeSeconds` with the run's `ranks` ranks running it at once (the median over the timed steps,
 * report.ts runProbe), so the slowdown for that many ranks becomes that step over the fitted
 * constants' one-rank prediction for it (`fittedSeconds`), as calibrate computes it from its own copies.
 * Everything else (the fitted constants, the collectives, the pass-time spread and the waits, which are
 * relative) stays as calibrated. Undefined where the profile has no fitted probe step to compare with.
 */
export function atRunSpeed(p: DeviceProfile, ranks: number, probeSeconds: number): DeviceProfile | undefined {
  const c = p.concurrency;
  if (c?.fittedSeconds === undefined || !(probeSeconds > 0) || ranks < 1) return undefined;
  return { ...p, concurrency: { ...c, ranks, concurrentSeconds: probeSeconds, slowdown: probeSeconds / c.fittedSeconds } };
}

const SOURCE = "measured by `meshplan calibrate` on this machine (src/executor/measure/calibrate.ts)";

export function profileGpu(p: DeviceProfile, opOverheadSeconds = p.opOverheadSeconds, elementwise = p.elementwiseBytesPerSecond): GpuSpec {
  const peak = p.peakFlopsPerSecond;
  // "HBM" is the faster of the two measured streams; each is a fraction of it.
  const optimizer = p.optimizerBytesPerSecond ?? elementwise;
  const loss = p.loss?.bytesPerSecond ?? elementwise;
  const embedding = p.embedding?.bytesPerSecond ?? elementwise;
  const routing = p.moeRouting?.bytesPerSecond ?? elementwise;
  const hbm = Math.max(elementwise, optimizer, loss, embedding, routing);
  return {
    name: `local-${p.backend}`,
    displayName: `${p.machine.cpuModel} core, TensorFlow.js ${p.backend}`,
    memoryBytes: 2 ** 40,
    hbmBytesPerSecond: hbm,
    peakFlopsPerSecond: { fp32: peak, tf32: peak, bf16: peak, fp16: peak, fp8: peak },
    nvlinkBytesPerSecond: p.collectiveBytesPerSecond,
    efficiency: {
      matmulMax: 1, matmulOverheadSeconds: opOverheadSeconds, attentionMax: 1, memoryBandwidth: elementwise / hbm, optimizerBandwidth: optimizer / hbm,
      lossBandwidth: loss / hbm, lossOverheadSeconds: p.loss?.overheadSeconds ?? 0,
      embeddingBandwidth: embedding / hbm, embeddingOverheadSeconds: p.embedding?.overheadSeconds ?? 0,
      moeRoutingBandwidth: routing / hbm, moeRoutingOverheadSeconds: p.moeRouting?.overheadSeconds ?? 0,
      ...(p.layerPasses === undefined ? {} : { layerPassShares: p.layerPasses.shares }),
      ...(p.weightFirstUse === undefined ? {} : { weightFirstUseSecondsPerParam: p.weightFirstUse.secondsPerParam }),
    },
    runtimeReserveBytes: 0,
    sources: { all: SOURCE },
  };
}

export function profileCluster(p: DeviceProfile, gpu: GpuSpec = profileGpu(p)): ClusterSpec {
  const link: LinkSpec = { link: "shared memory", bytesPerSecondPerGpu: p.collectiveBytesPerSecond, latencySeconds: p.collectiveLatencySeconds, busBandwidthEfficiency: 1 };
  return { name: "local", displayName: "this machine's executor ranks", gpu, gpusPerNode: 1024, intraNode: link, interNode: link, sources: { all: SOURCE } };
}

/** The profile as a cluster of `ranks` ranks: each computes at the rate measured with that many busy. */
export function profileShape(p: DeviceProfile, ranks: number): ClusterShape {
  const f = concurrencySlowdown(p, ranks);
  const slowed: DeviceProfile = {
    ...p, peakFlopsPerSecond: p.peakFlopsPerSecond / f, opOverheadSeconds: p.opOverheadSeconds * f, elementwiseBytesPerSecond: p.elementwiseBytesPerSecond / f,
    ...(p.optimizerBytesPerSecond === undefined ? {} : { optimizerBytesPerSecond: p.optimizerBytesPerSecond / f }),
    ...(p.loss === undefined ? {} : { loss: slowedCost(p.loss, f) }),
    ...(p.embedding === undefined ? {} : { embedding: slowedCost(p.embedding, f) }),
    ...(p.moeRouting === undefined ? {} : { moeRouting: slowedCost(p.moeRouting, f) }),
    ...(p.weightFirstUse === undefined ? {} : { weightFirstUse: { ...p.weightFirstUse, secondsPerParam: p.weightFirstUse.secondsPerParam * f } }),
  };
  return { spec: profileCluster(slowed), gpus: ranks, gpusPerNode: 1024 };
}

/** A measured pass cost `f` times slower: its fixed time longer and its rate lower by that factor. */
function slowedCost<C extends PassCost>(c: C, f: number): C {
  return { ...c, overheadSeconds: c.overheadSeconds * f, bytesPerSecond: c.bytesPerSecond / f };
}

/** Simulated steps per jittered prediction, and the seed of their draws (a prediction repeats exactly). */
export const JITTER_SAMPLES = 63;
const JITTER_SEED = 20261122;

/**
 * A pass's log-time spread as a function of its length, through the two measured points (forwards and
 * backwards): sigma(t) = sigma_f (t / t_f)^-k. Short passes vary more in relative terms (a scheduler tick or
 * a cache refill is a larger share of them); k = 0 would be noise proportional to the pass, k = 1/2 the sum
 * of independent small delays, k = 1 a fixed-size delay, so k is kept in [0, 1]; sigma is kept at most 1.
 */
export function spreadAt(f: PassSpread, b: PassSpread): (seconds: number) => number {
  const [short, long] = f.meanSeconds <= b.meanSeconds ? [f, b] : [b, f];
  const ratio = long.meanSeconds / short.meanSeconds;
  const k = ratio > 1.05 && short.logSd > 0 && long.logSd > 0 ? Math.min(1, Math.max(0, Math.log(short.logSd / long.logSd) / Math.log(ratio))) : 0;
  const sigma = k === 0 ? Math.max(short.logSd, long.logSd) : short.logSd;
  return (seconds) => Math.min(1, sigma * (seconds / short.meanSeconds) ** -k);
}

/**
 * The mean wait at a collective after a segment of L seconds, from the measured points: the least-squares
 * line w = a + b L with a, b >= 0 (a: the hand-over and wake-up a collective costs even when both members
 * arrive together; b: the segments' spread, a share of their length) up to the longest measured segment
 * L_max, beyond it a + b sqrt(L L_max): the spread grows as the square root of the length (a sum of
 * independent delays), since a line fitted to short segments would charge long ones a constant share.
 * For groups of m members instead of the measured `measuredMembers`, the spread term scales with the mean
 * of the largest of m normals (stats.ts expectedMaxOfNormals): the slowest of more members is slower.
 * Each group's collectives (tp, cp, ep) take the line through the points measured at that group's
 * collectives where there are two or more of them: the executor's cp ranks wait longer than its tp ranks
 * after segments of the same mean length (cp2 runs of the fit shapes 0.10-0.17 ms, tp2 runs 0.06-0.09 ms;
 * not from uneven work, since every cp rank computes its queries against all keys under a mask; perhaps
 * from the passes' uneven cuts: cp's K and V gathers come back to back, so its other segments are longer
 * than the mean); else the line through all points (older profiles name no group, and profiles before
 * 2026-11-25 have no point at an expert-parallel all-to-all).
 */
export function syncWaitAt(points: readonly SyncWaitPoint[], measuredMembers: number): (segmentSeconds: number, members: number, group?: SyncGroup) => number {
  const all = waitAtLine(waitLine(points), measuredMembers);
  const byGroup = new Map<SyncGroup, (segmentSeconds: number, members: number) => number>();
  for (const g of ["tp", "cp", "ep"] as const) {
    const own = points.filter((p) => p.group === g);
    if (own.length >= 2) byGroup.set(g, waitAtLine(waitLine(own), measuredMembers));
  }
  return (segmentSeconds, members, group) => (group === undefined ? all : byGroup.get(group) ?? all)(segmentSeconds, members);
}

function waitAtLine(line: ReturnType<typeof waitLine>, measuredMembers: number): (segmentSeconds: number, members: number) => number {
  if (line === undefined) return () => 0;
  const { a, b, longest } = line;
  const base = maxOfNormals(measuredMembers);
  const scaleOf = (m: number) => (base > 0 ? maxOfNormals(m) / base : 1);
  return (segmentSeconds, members) => {
    if (members <= 1) return 0;
    const spread = segmentSeconds <= longest ? b * segmentSeconds : b * Math.sqrt(segmentSeconds * longest);
    return a + spread * scaleOf(members);
  };
}

/** expectedMaxOfNormals, each group size integrated once (the waits ask for it at every collective). */
const MAX_OF_NORMALS = new Map<number, number>();
function maxOfNormals(m: number): number {
  let e = MAX_OF_NORMALS.get(m);
  if (e === undefined) MAX_OF_NORMALS.set(m, (e = expectedMaxOfNormals(m)));
  return e;
}

/** The wait line through the measured points (syncWaitAt), with a, b >= 0; undefined without a usable point. */
function waitLine(points: readonly SyncWaitPoint[]): { a: number; b: number; longest: number } | undefined {
  const usable = points.filter((p) => p.segmentSeconds > 0);
  if (usable.length === 0) return undefined;
  let { a, b } = lineFit(usable.map((p) => p.segmentSeconds), usable.map((p) => p.waitSeconds));
  if (b < 0) [a, b] = [mean(usable.map((p) => p.waitSeconds)), 0];
  else if (a < 0) [a, b] = [0, total(usable.map((p) => p.segmentSeconds * p.waitSeconds)) / total(usable.map((p) => p.segmentSeconds ** 2))];
  return { a, b, longest: Math.max(...usable.map((p) => p.segmentSeconds)) };
}

/**
 * The mean wait at a data-parallel collective for replicas whose arrivals spread with standard deviation
 * sd (their drift over the passes since the last one, simulate.ts DataParallelSync): the hand-over the
 * measured line gives a collective of no work (its intercept a) plus sd times the mean of the largest of
 * m standard normals (how far behind the mean the slowest of m arrives; 0.56 sd for two). The line through
 * the tp points where there are two or more (the cp ranks wait longer for reasons of their own, syncWaitAt).
 */
export function dataParallelWaitAt(points: readonly SyncWaitPoint[]): (driftSdSeconds: number, members: number) => number {
  const tp = points.filter((p) => p.group === "tp");
  const a = waitLine(tp.length >= 2 ? tp : points)?.a ?? 0;
  return (sd, members) => (members <= 1 ? 0 : a + maxOfNormals(members) * sd);
}

/**
 * The ranks calibrate also measures the pass-time spread and the waits at collectives with, besides every
 * core (profile fields `fewerRanks`): the smallest run in which ranks wait on one another. On a 16-core
 * machine a pair of ranks alone waited a third as long at their collectives as a pair among sixteen busy
 * ones (0.03-0.05 ms against 0.08-0.14 after 0.2-0.6 ms segments), and with the waits of every core busy
 * tiny-gpt tp2 and cp2 were predicted 12-26% slower than they ran; the two-copy pass spread was also lower
 * there, if less clearly (src/executor/TIME-RECORD.md, "Pass-time jitter within a step, and at a run's load").
 */
export const FEWER_RANKS = 2;

/**
 * Where a run of `ranks` ranks lies between a measurement with `fewer` ranks at once (0) and one with
 * `busy` (1): linear in the ranks, as concurrencySlowdown interpolates the slowdown, and clamped.
 */
export function loadShare(ranks: number, fewer: number, busy: number): number {
  if (busy <= fewer) return 1;
  return Math.min(1, Math.max(0, (ranks - fewer) / (busy - fewer)));
}

/** Blends two measured functions by loadShare: the `fewer` one at a share of 0, the `busy` one at 1. */
function blend<A extends unknown[]>(share: number, fewer: (...a: A) => number, busy: (...a: A) => number): (...a: A) => number {
  if (share >= 1) return busy;
  if (share <= 0) return fewer;
  return (...a) => (1 - share) * fewer(...a) + share * busy(...a);
}

/** The pass-time spread (spreadAt) for a run of `ranks` ranks: the measurement with every core busy, blended with the one with fewer ranks where the profile has it. */
export function passSpreadAt(j: NonNullable<DeviceProfile["passJitter"]>, cpus: number, ranks: number): (seconds: number) => number {
  const busy = spreadAt(j.forward, j.backward);
  const f = j.fewerRanks;
  return f === undefined ? busy : blend(loadShare(ranks, f.ranks, j.ranks ?? cpus), spreadAt(f.forward, f.backward), busy);
}

/** The waits at tp and cp collectives (syncWaitAt) and at data-parallel ones (dataParallelWaitAt) for a run of `ranks` ranks, blended as passSpreadAt. */
export function syncWaitsAt(w: NonNullable<DeviceProfile["syncWaits"]>, ranks: number): { sync: ReturnType<typeof syncWaitAt>; dataParallel: ReturnType<typeof dataParallelWaitAt> } {
  const busy = { sync: syncWaitAt(w.points, w.members), dataParallel: dataParallelWaitAt(w.points) };
  const f = w.fewerRanks;
  if (f === undefined) return busy;
  const share = loadShare(ranks, f.ranks, w.ranks);
  return { sync: blend(share, syncWaitAt(f.points, w.members), busy.sync), dataParallel: blend(share, dataParallelWaitAt(f.points), busy.dataParallel) };
}

/**
 * The measured pass-time jitter as the simulator takes it, for a plan whose ranks wait on one another
 * inside a step: pipeline stages on their neighbours' activations and gradients (the pass-time spread),
 * tensor- and context-parallel replicas at every blocking collective of their passes (the measured wait;
 * accounting.ts passCalls gives the sync points, simulate.ts PassJitter adds a wait at each), and the
 * data-parallel replicas at their gradient reductions and ZeRO gathers (after drifting by the measured
 * pass-time spread of every pass since the previous one, dataParallelWaitAt; not with parameter servers,
 * whose pushes and pulls wait for no peer).
 * Both at the load of a run of `ranks` ranks (passSpreadAt, syncWaitsAt).
 * With one stage the spread has nothing to turn into waits, so only the collectives' waits are added,
 * once. Undefined where nothing waits (one rank) or the profile lacks the measurement. Fresh seeded draws
 * each call: a prediction repeats.
 */
export function profileJitter(p: DeviceProfile, model: ModelSpec, plan: Plan, ranks: number): PassJitter | undefined {
  const spread = p.passJitter === undefined ? undefined : passSpreadAt(p.passJitter, p.machine.cpus, ranks);
  const waits = p.syncWaits === undefined ? undefined : syncWaitsAt(p.syncWaits, ranks);
  // The replicas that drift apart: the dp pipelines (a replica's cp ranks meet at every layer's collectives).
  const dataParallelMembers = plan.parameterServers === 0 ? plan.dp : 1;
  const dataParallel = dataParallelMembers > 1 && spread !== undefined && waits !== undefined
    ? { members: dataParallelMembers, passLogSdAt: spread, waitSeconds: waits.dataParallel } : undefined;
  const replicas = plan.tp > 1 || plan.cp > 1 || plan.ep > 1 || dataParallel !== undefined;
  const stages = plan.pp > 1 && spread !== undefined;
  if (!stages && !(replicas && waits !== undefined)) return undefined;
  const syncs: StageSyncs[] = Array.from({ length: plan.pp }, (_, stage) => {
    const { tp, cp, ep } = passCalls(model, plan, stage);
    return {
      forward: [{ group: "tp", members: plan.tp, count: tp.forward }, { group: "cp", members: plan.cp, count: cp.forward }, { group: "ep", members: plan.ep, count: ep.forward }],
      backward: [{ group: "tp", members: plan.tp, count: tp.backward }, { group: "cp", members: plan.cp, count: cp.backward }, { group: "ep", members: plan.ep, count: ep.backward }],
    };
  });
  return {
    logSdAt: stages ? spread : () => 0,
    samples: stages ? JITTER_SAMPLES : 1,
    normal: standardNormal(mulberry32(JITTER_SEED)),
    syncs,
    ...(waits === undefined ? {} : { syncWaitSeconds: waits.sync }),
    ...(dataParallel === undefined ? {} : { dataParallel }),
  };
}

/**
 * The prediction an execution is checked against: the event simulator's step (src/simulator/simulate.ts),
 * so the predicted step time and bubble come from the simulated timeline of the plan's schedule, with the
 * cost model's per-stage costs and memory. The executor has no fused attention, so the plan is predicted
 * with flashAttention off.
 */
export function predict(model: ModelSpec, shape: ClusterShape, plan: Plan): Estimate {
  return predictWithStage(model, shape, plan).estimate;
}

/** The prediction and the pipeline stage whose timeline sets the pace (the one its bubble is of). */
function predictWithStage(model: ModelSpec, shape: ClusterShape, plan: Plan, jitter?: PassJitter): { estimate: Estimate; criticalStage: number } {
  if (jitter === undefined) {
    const sim = simulate(model, shape, asExecuted(plan));
    return { estimate: sim.estimate, criticalStage: sim.timeline.criticalRank };
  }
  const sim = simulateJittered(model, shape, asExecuted(plan), jitter);
  return { estimate: sim.estimate, criticalStage: sim.criticalStage };
}

/**
 * The plan as the executor runs it: no fused attention, ZeRO 0/1's once-per-step reduction and gather
 * after the last backward and the update (src/executor/run/rank.ts), not overlapped with the passes,
 * ZeRO-2/3's reduce-scatters and gathers in line with the passes, each unit's as its pass reaches it, and
 * ZeRO-2's gather after the update (src/executor/parallel/state.ts; Plan.dpCommBlocking, which puts that
 * traffic in each stage's pass time), and every tensor-parallel collective synchronous, never overlapped
 * (src/executor/model/layer.ts runs each in turn).
 */
function asExecuted(plan: Plan): Plan {
  const dataParallel = plan.dp * plan.cp > 1 && plan.parameterServers === 0;
  const dp = !dataParallel ? {} : plan.zero <= 1 ? { dpCommExposed: true } : { dpCommBlocking: true };
  const sync = plan.tp > 1 ? { tpCommOverlap: false, tpSyncBackward: true } : {};
  return { ...plan, flashAttention: false, ...dp, ...sync };
}

function predictionNote(jitter: PassJitter, plan: Plan): string {
  const groups = [plan.tp > 1 ? "tp" : "", plan.cp > 1 ? "cp" : "", plan.ep > 1 ? "ep" : "", jitter.dataParallel !== undefined ? "dp" : ""].filter((g) => g !== "");
  const waits = jitter.syncWaitSeconds !== undefined && groups.length > 0 ? `waits at ${groups.join("/")} collectives` : undefined;
  if (jitter.samples === 1) return `predicted with this machine's ${waits} (measured by calibrate with every core busy)`;
  return `predicted with this machine's pass-time jitter${waits === undefined ? "" : ` and ${waits}`} (measured by calibrate with every core busy): the median of ${jitter.samples} simulated steps`;
}

/** The prediction for `plan` on `ranks` ranks of the profiled machine, pass-time jitter included where it applies. */
export function predictOnProfile(model: ModelSpec, profile: DeviceProfile, ranks: number, plan: Plan): ReportedPrediction {
  const shape = profileShape(profile, ranks);
  const jitter = profileJitter(profile, model, plan, ranks);
  const p = predictWithStage(model, shape, plan, jitter);
  return {
    shape, estimate: p.estimate, criticalStage: plan.pp > 1 ? p.criticalStage : undefined,
    ...(jitter === undefined ? {} : {
      note: predictionNote(jitter, plan),
    }),
  };
}

/**
 * A ZB-V plan with its order found for the passes as this profile prices them (compute.ts
 * pricedVPassRatios), unless it gives its own: TensorFlow.js's B is about twice its F and its W about
 * half (src/executor/TIME-RECORD.md, "How a layer's time splits between its passes"), where the FLOP ratios say 1 and 1, and the order found for
 * those idled 0.17-0.23 of a step on tiny-gpt-4 against 0.04-0.06 predicted. Other plans as they are.
 */
export function withPricedPasses(model: ModelSpec, profile: DeviceProfile, ranks: number, plan: Plan): Plan {
  return withPricedVPasses(model, profileShape(profile, ranks).spec.gpu, plan);
}

/** A fit shape's name as calibrate gives it: width, sequence length and depth ("h64 s32 L2"). */
export function fitShapeName(model: Pick<ModelSpec, "hiddenSize" | "seqLen" | "layers">): string {
  return `h${model.hiddenSize} s${model.seqLen} L${model.layers}`;
}

/**
 * The speed probe a run of `workers` ranks takes (ExecuteOptions.speedProbe): the profile's concurrency step,
 * where the profile names it and has its fitted one-rank prediction, and the ranks have a core each (with
 * more ranks than cores the timing comparison is not meaningful, and the probe would only lengthen it).
 */
export function runSpeedProbe(p: DeviceProfile, workers: number, cores: number): SpeedProbeSpec | undefined {
  const c = p.concurrency;
  return c?.probe !== undefined && c.fittedSeconds !== undefined && workers <= cores ? { model: c.probe.model, plan: c.probe.plan } : undefined;
}

/**
 * predictOnProfile for an execution: at the machine's speed during the run where the run timed the speed
 * probe (atRunSpeed), with the speed figures for the report; else on the profile as calibrated.
 */
export function predictForRun(model: ModelSpec, p: DeviceProfile, ex: Execution): ReportedPrediction {
  const ranks = ex.results.length;
  // A profile of another backend predicts with that backend's rates: the report says so.
  const other = otherBackend(p, ex.backend);
  const backend = other === undefined ? {} : { profileBackend: other };
  const calibrated = { ...predictOnProfile(model, p, ranks, ex.plan), ...backend };
  const probe = runProbe(ex);
  const atRun = probe === undefined ? undefined : atRunSpeed(p, probe.ranks, probe.seconds);
  const c = p.concurrency;
  if (probe === undefined || atRun === undefined || c?.fittedSeconds === undefined) return calibrated;
  const shape = c.probe === undefined ? "calibrate's concurrency step" : `${c.probe.shape ?? fitShapeName(c.probe.model)}, ${c.probe.plan.globalBatch} micro-batches`;
  return {
    ...predictOnProfile(model, atRun, ranks, ex.plan),
    ...backend,
    speed: {
      probe: `${shape}, ${probe.ranks} at once`,
      calibrationSeconds: c.fittedSeconds * concurrencySlowdown(p, probe.ranks),
      runSeconds: probe.seconds,
      stepSecondsAtCalibration: calibrated.estimate.time.stepSeconds,
    },
  };
}
