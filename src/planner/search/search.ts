import { performance } from "node:perf_hooks";
import { InputError } from "../../spec/errors.js";
import { defaultPrecision, microBatchCount, resolvePlan, type PlanInput } from "../../spec/plan.js";
import { splitsBackward } from "../../spec/virtual-stages.js";
import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { estimate, quickMemoryOf, quickTokensPerSecond, type QuickMemory, type QuickScore } from "../cost/estimate.js";
import { cpCostPerMicroBatch, epCostPerMicroBatch, resolveLinks, tpCostPerMicroBatch } from "../cost/communication.js";
import { embeddingTimes, headTimes, layerTimes, withPricedVPasses } from "../cost/compute.js";
import { peakBytesLowerBound } from "../cost/memory.js";
import { memoryCosts, planCosts, type MemoryCosts } from "../cost/stages.js";
import type { Estimate } from "../cost/types.js";
import { solvePartition } from "../partition/ilp.js";
import { layoutExists, partitionProblem, type PartitionSolution } from "../partition/problem.js";
import { forEachCandidate, pinnedSchedule, searchGlobalBatch, type MeshChoice } from "./space.js";
import { divisorsOf } from "../../math/divisors.js";
import { TopList } from "./top-list.js";

/** Evaluates one plan; the analytic estimate by default, the event simulator when the caller passes it. */
export type Evaluate = (model: ModelSpec, shape: ClusterShape, plan: Plan) => Estimate;

export interface SearchOptions {
  readonly top: number;
  /** How many of the analytic ranking's best go through the integer program and `refine`. */
  readonly shortlist?: number;
  /** The final evaluation of the best plans (meshplan passes the simulator); the analytic one when absent. */
  readonly refine?: Evaluate;
  /** How many of the analytic best go through `refine` (default top + 3). */
  readonly refineCount?: number;
  /** Plans of more passes per step than this keep their analytic estimate (default MAX_REFINED_PASSES). */
  readonly refineMaxPasses?: number;
}

/**
 * The most forward, backward and weight passes per step `refine` is given one plan of: 2^16, eight times
 * the passes of the largest built-in defaults (Llama 3 405B on 16384 GPUs, 70B on 64: 8192), about a
 * quarter of a second of the simulator on one core. A step of a huge batch (2^24 sequences on 8 GPUs:
 * millions of micro-batches) took minutes and gigabytes to replay event by event (llama3-8b, 2^20
 * sequences: 11 s and 1 GB); its analytic estimate is the closed form the simulator agrees with, and
 * such a plan keeps it.
 */
export const MAX_REFINED_PASSES = 2 ** 16;

/** Forward, backward and weight passes in one step of a plan: what the simulator replays. */
export function passesPerStep(p: Plan): number {
  return p.pp * p.virtualStages * microBatchCount(p) * (splitsBackward(p.schedule) ? 3 : 2);
}

export interface SearchResult {
  /** Plans considered: evaluated by the analytic model, or ruled out by a bound (see `skipped`); the `laidOut` layouts included. */
  readonly searched: number;
  /**
   * Plans that fit in memory: every candidate that fits (those ruled out by a bound included: their memory
   * is checked), plus the `laidOut` layouts of the integer program.
   */
  readonly feasible: number;
  /** Fitting layouts the integer program found beyond the candidates (uneven or partly recomputed; more with a longer shortlist). */
  readonly laidOut: number;
  /** Ranked plans left out because an earlier one has the same speed and memory (another equivalent layout). */
  readonly equivalent: number;
  /** Candidates ruled out before evaluation: meshes whose model states alone overflow; plans that a bound shows cannot enter the shortlist (compute and tp/cp/ep collectives alone too slow, in any layout; or full recomputation where none fits). */
  readonly skipped: { readonly statesOverflow: number; readonly computeBound: number };
  /** Fitting plans, best first (tokens/s, ties by memory headroom). Empty when none fits. */
  readonly plans: readonly Estimate[];
  /** When nothing fits: the plans that overflow least, smallest overflow first. */
  readonly closest: readonly Estimate[];
  /** Wall seconds of each integer-program solve (for the benchmark); a program posed twice is solved once. */
  readonly partitionSeconds: readonly number[];
  /** What settled each of those programs: the cuts alone, javascript-lp-solver or the threshold algorithm ("none" when no layout exists). */
  readonly partitionSolvers: readonly string[];
  /** Plans that kept their analytic estimate because their step has more passes than refineMaxPasses (0 without refine). */
  readonly unrefined: number;
}

/** Speeds closer than this share (relative) rank as equal, and the smaller memory goes first. */
const SPEED_TIE = 1e-6;

/**
 * Ranking: more tokens/s first; equal speed (to a part in a million), less memory; equal memory too,
 * the simpler mesh (fewer context-parallel, then pipeline, then tensor-parallel ranks).
 */
export function faster(a: Estimate, b: Estimate): number {
  const speed = b.throughput.tokensPerSecond - a.throughput.tokensPerSecond;
  if (Math.abs(speed) > SPEED_TIE * Math.max(a.throughput.tokensPerSecond, 1)) return speed;
  const memory = a.memory.peakBytesPerGpu - b.memory.peakBytesPerGpu;
  if (Math.abs(memory) > 1e-6 * a.memory.capacityBytes) return memory;
  return a.plan.cp - b.plan.cp || a.plan.pp - b.plan.pp || a.plan.tp - b.plan.tp || b.plan.microBatch - a.plan.microBatch;
}

/** Two plans that predict the same step time and the same memory (to a part in a million and 0.1 GiB). */
function sameOutcome(a: Estimate, b: Estimate): boolean {
  return Math.abs(a.time.stepSeconds - b.time.stepSeconds) <= 1e-6 * a.time.stepSeconds &&
    Math.abs(a.memory.peakBytesPerGpu - b.memory.peakBytesPerGpu) <= 0.1 * 2 ** 30;
}

/** A plan's identity, for removing duplicates that different routes reach. */
export function planKey(p: Plan): string {
  return JSON.stringify(p);
}

/**
 * A lower bound on the cost model's pipelined time over the time of the work alone, m * S / p (S the sum of
 * the stages' per-micro-batch times), from its formulas (cost/pipeline.ts), with T_max >= S / p:
 * - GPipe, 1F1B: (m - 1) T_max + S >= (m + p - 1) S / p;
 * - interleaved: m T_max + (S - T_max) / v = (m - 1/v) T_max + S / v >= (m + (p - 1) / v) S / p;
 * - naive: m S = p (m S / p);
 * - ZB-H1, ZB-V: m T_max + max(0, fill) >= m S / p (its fill may be 0).
 * So tokens/s is at most the step's tokens over pipelineFillFactor * m * S / p, S at least its lower bound
 * (tokensPerSecondBound, below; test/planner/search.test.ts checks it on every candidate of several searches).
 */
export function pipelineFillFactor(plan: Pick<Plan, "pp" | "dp" | "microBatch" | "globalBatch" | "schedule" | "virtualStages">): number {
  const p = plan.pp;
  const m = plan.globalBatch / (plan.dp * plan.microBatch);
  switch (plan.schedule) {
    case "gpipe":
    case "1f1b":
      return (m + p - 1) / m;
    case "interleaved":
      return (m + (p - 1) / plan.virtualStages) / m;
    case "naive":
      return p;
    case "zb-h1":
    case "zb-v":
      return 1;
  }
}

/**
 * An upper bound on the tokens/s of a plan's mesh and knobs under any stage layout and any per-stage
 * recomputation (what the integer program may choose), so that a plan it rules out cannot matter to the
 * shortlist nor to the integer program's layouts: with S >= stageSumLowerBound (below) and T_max >= S / p,
 * the pipelined time is at least pipelineFillFactor * m * S / p, and the step adds only non-negative time.
 * test/planner/search.test.ts checks the bound against every candidate of several searches.
 */
export function tokensPerSecondBound(model: ModelSpec, shape: ClusterShape, plan: Plan): number {
  return boundFromStageSum(plan, stageSumLowerBound(model, shape, plan));
}

function boundFromStageSum(plan: Pick<Plan, "pp" | "dp" | "microBatch" | "globalBatch" | "schedule" | "virtualStages" | "seqLen">, stageSum: number): number {
  const m = plan.globalBatch / (plan.dp * plan.microBatch);
  return (plan.globalBatch * plan.seqLen) / (pipelineFillFactor(plan) * m * stageSum / plan.pp);
}

/**
 * A lower bound on S, the sum over the stages of their time per micro-batch, in any layout of the layers
 * and with any recomputation. A stage's time (cost/stages.ts) is its compute, recomputation (>= 0) and
 * exposed tp/cp/ep collectives; the collectives are a cost per layer plus extras on the first and last
 * stages (embedding, output layer), so S >= C + L a + e_first + e_last, C the model's compute per
 * micro-batch. It depends on the mesh, the micro-batch and the plan-wide knobs, not on ZeRO, the schedule,
 * the layout or recomputation (the search computes it once per mesh and micro-batch; the test checks that).
 */
export function stageSumLowerBound(model: ModelSpec, shape: ClusterShape, plan: Plan): number {
  const gpu = shape.spec.gpu;
  const layer = layerTimes(model, gpu, plan);
  const head = headTimes(model, gpu, plan);
  const links = resolveLinks(plan, shape);
  const p = plan.pp;
  const embedding = embeddingTimes(model, gpu, plan);
  const compute = model.layers * (layer.forwardSeconds + layer.backwardInputSeconds + layer.backwardWeightSeconds) + head.forwardSeconds + head.backwardSeconds +
    embedding.forwardSeconds + embedding.backwardSeconds;
  // every layer on the first stage and none recomputed: its collectives are L a + e_first, the last stage's e_last
  const probe: Plan = { ...plan, layersPerStage: plan.layersPerStage.map((_, i) => (i === 0 ? model.layers : 0)), recomputeLayersPerStage: plan.layersPerStage.map(() => 0) };
  const coreBackward = layer.backwardInputSeconds - layer.backwardWeightSeconds;
  const exposed = (j: number) => {
    const tp = tpCostPerMicroBatch(model, probe, links, j, { layer, head });
    const cp = cpCostPerMicroBatch(model, probe, links, j, layer.attentionCoreForwardSeconds, coreBackward);
    const ep = epCostPerMicroBatch(model, probe, links, j);
    return tp.forward.seconds + tp.backward.seconds + cp.forward.seconds + cp.backward.seconds + ep.forward.seconds + ep.backward.seconds;
  };
  return compute + exposed(0) + (p > 1 ? exposed(p - 1) : 0);
}

/**
 * Resolves the pins as a plan, so that an error the pins alone cause names its field (heads that do not
 * split over tp, degrees that do not divide the GPUs). resolvePlan fills a free tp, pp or cp with 1, so
 * with a degree free its "dp * tp * pp * cp != gpus" is about those ones, not the pins: when the pinned
 * degrees divide the GPUs, that error is not the pins' and is passed over.
 */
function resolvePinsAlone(model: ModelSpec, shape: ClusterShape, pinned: PlanInput): void {
  try {
    resolvePlan(model, shape, pinned);
  } catch (err) {
    const free = pinned.tp === undefined || pinned.pp === undefined || pinned.cp === undefined;
    if (err instanceof InputError && err.field === "gpus" && free) throw pinnedDegreeError(shape, pinned) ?? err;
    if (!(err instanceof InputError) || err.field !== "dp" || !free || pinned.dp === undefined) throw err;
    const others = (pinned.tp ?? 1) * (pinned.pp ?? 1) * (pinned.cp ?? 1);
    if (shape.gpus % (pinned.dp * others) === 0) return;
    throw new InputError({
      code: "not-divisible", field: "dp", value: pinned.dp, valid: divisorsOf(shape.gpus / others).join(", "),
      reason: `dp times the pinned degrees (${pinned.dp * others}) must divide gpus(${shape.gpus})`,
    });
  }
}

/**
 * With tp, pp or cp free, "tp * pp * cp must divide gpus" names degrees the search would choose: the
 * error is the first pinned degree that, with the pinned ones before it, no longer divides the GPUs.
 */
function pinnedDegreeError(shape: ClusterShape, pinned: PlanInput): InputError | undefined {
  let before = 1;
  for (const field of ["tp", "pp", "cp"] as const) {
    const d = pinned[field];
    if (d === undefined) continue;
    if (shape.gpus % (before * d) !== 0) {
      return new InputError({
        code: "not-divisible", field, value: d, valid: divisorsOf(shape.gpus / before).join(", "),
        reason: `${before > 1 ? `with the pinned degrees before it (${before}), ` : ""}it must divide gpus(${shape.gpus})`,
      });
    }
    before *= d;
  }
  return undefined;
}

function sameLayout(a: Plan, b: Plan): boolean {
  return a.layersPerStage.every((n, i) => n === b.layersPerStage[i]) && a.recomputeLayersPerStage.every((n, i) => n === b.recomputeLayersPerStage[i]);
}

/** A plan and its memory; its speed too where it was timed (every plan that fits). */
interface Scored {
  readonly plan: Plan;
  readonly score: QuickMemory | QuickScore;
}

/** A plan with its speed, for the lists that rank by it. */
interface Timed extends Scored {
  readonly score: QuickScore;
}

/**
 * The plan with its speed added to the memory it was scored with (quickScore's numbers), unless it has it;
 * `memory`, the plan's memory costs when the caller has them, is reused for the timing.
 */
function timed(model: ModelSpec, shape: ClusterShape, s: Scored, memory?: MemoryCosts): Timed {
  if ("tokensPerSecond" in s.score) return { plan: s.plan, score: s.score };
  return { plan: s.plan, score: { ...s.score, tokensPerSecond: quickTokensPerSecond(model, shape, s.plan, planCosts(model, shape, s.plan, memory)) } };
}

function fasterScore(a: Timed, b: Timed): number {
  const speed = b.score.tokensPerSecond - a.score.tokensPerSecond;
  if (Math.abs(speed) > SPEED_TIE * Math.max(a.score.tokensPerSecond, 1)) return speed;
  const memory = a.score.peakBytesPerGpu - b.score.peakBytesPerGpu;
  if (Math.abs(memory) > 1) return memory;
  return a.plan.cp - b.plan.cp || a.plan.pp - b.plan.pp || a.plan.tp - b.plan.tp || b.plan.microBatch - a.plan.microBatch;
}

/**
 * Searches the plan space in three passes:
 * 1. every candidate (space.ts) through the analytic model, keeping the best that fit and, separately,
 *    the meshes that fit only with full recomputation ranked by their speed without it (the integer
 *    program may fit them by recomputing only some layers);
 * 2. the integer program on each shortlisted mesh: uneven layers per stage and per-stage recompute;
 * 3. `refine` (the simulator) on the analytic best of those, which sets the final order.
 */
export function searchPlans(model: ModelSpec, shape: ClusterShape, pinned: PlanInput, options: SearchOptions): SearchResult {
  const shortlist = options.shortlist ?? Math.max(3 * options.top, 12);
  let searched = 0;
  let feasible = 0;
  // Pass 1 ranks by a quick score (the same analytic model, without building Estimates).
  const best = new TopList<Timed>(shortlist, fasterScore);
  const repairable = new TopList<Timed>(shortlist, fasterScore);
  // The fastest fitting variant of each pipelined mesh, micro-batch and schedule: the shortlist above can fill with
  // ZeRO and schedule variants of a few meshes, leaving out one whose even layout ranks just below them
  // but leads once the integer program splits its layers unevenly (llama3-8b dp 4 x pp 2 on 8 GPUs:
  // 57.0 s with 16/16 layers, 53.9 s with 17/15).
  const meshBest = new Map<string, Timed>();
  const closest = new TopList<Scored>(options.top, (a, b) => a.score.peakBytesPerGpu - b.score.peakBytesPerGpu);
  let firstError: InputError | undefined;
  let lastNone: Scored | undefined;
  let noneBounded = false; // the last "none" variant visited was ruled out by a bound
  const stageSums = new Map<string, number>(); // stageSumLowerBound by mesh and micro-batch
  const generatedLayouts = pinned.layersPerStage === undefined && pinned.recomputeLayersPerStage === undefined;

  const gpu = shape.spec.gpu;
  const fp32Gradients = pinned.fp32Gradients ?? (pinned.precision ?? defaultPrecision(gpu)) !== "fp16"; // resolvePlan's default
  const optimizerState = pinned.optimizerStateBytes === undefined ? {} : { optimizerStateBytes: pinned.optimizerStateBytes };
  const runtime = { ...(pinned.runtimeReserveBytes === undefined ? {} : { runtimeReserveBytes: pinned.runtimeReserveBytes }), ...(pinned.allocatorCacheShare === undefined ? {} : { allocatorCacheShare: pinned.allocatorCacheShare }) };
  let pruned = 0;
  let bounded = 0;
  let prune = true;
  /** The second pass (pruned meshes too): the plans the closest list has seen, so each is offered once. */
  let revisited: Set<string> | undefined;
  const skipMesh = (mesh: MeshChoice) => {
    if (!prune) return false;
    const bound = peakBytesLowerBound(model, gpu, { ...mesh, parameterServers: pinned.parameterServers ?? 0, fp32Gradients, keep16BitGrads: pinned.keep16BitGrads === true, fp32ShardOnly: pinned.fp32ShardOnly === true, ...optimizerState, ...runtime });
    if (bound <= gpu.memoryBytes) return false;
    pruned++;
    return true;
  };

  // A plan that a bound rules out is not timed, but its memory is checked so that `feasible` counts every
  // candidate that fits, whatever --top is (the bounds depend on the shortlist, hence on top).
  // Recomputation only lowers memory (a property test holds the cost model to it): a variant of a plan
  // whose "none" variant fits fits too, without a check. Not under ZB-V, whose order recomputation changes
  // (a longer B defers more W passes, each keeping its layers' rebuilt inputs: memory.ts
  // stageWeightGradInputBytes), so that a fully recomputed plan may hold more.
  let noneFits: boolean | undefined; // whether the last "none" variant visited fits (undefined: not known)
  // A candidate as a plan: ZB-V's order for the passes as this GPU prices them, unless pinned.
  const resolved = (input: PlanInput) => withPricedVPasses(model, gpu, resolvePlan(model, shape, input));
  const ruledOut = (input: PlanInput) => {
    searched++;
    bounded++;
    if (input.recompute !== "none" && noneFits === true && input.schedule !== "zb-v") {
      feasible++;
      return;
    }
    try {
      const plan = resolved(input);
      const fits = quickMemoryOf(model, shape, plan, memoryCosts(model, shape, plan)).fits;
      if (fits) feasible++;
      if (input.recompute === "none") noneFits = fits;
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
    }
  };

  const visit = (input: PlanInput, group: string) => {
    if (input.recompute === "none") {
      lastNone = undefined; // set again below once this variant is scored
      noneFits = undefined;
      noneBounded = false;
    }
    // Full recomputation only adds time: when the same plan without it fits, it cannot win.
    if (input.recompute === "full" && lastNone?.score.fits === true) {
      ruledOut(input);
      return;
    }
    // Recomputation only adds time and the bounds leave it out (tokensPerSecondBound holds for any
    // recomputation): when the same plan without it was ruled out, so is this one.
    if (input.recompute !== "none" && noneBounded) {
      ruledOut(input);
      return;
    }
    let scored: Scored;
    let fitting: Timed | undefined;
    // Once the shortlist is full, a plan whose compute and collectives alone are slower than its last entry
    // in any layout cannot enter it, nor can the integer program's layouts of its mesh. The bound's stage
    // sum is kept per mesh and micro-batch; with it known, a candidate is ruled out before it is resolved
    // (the generator's variants of a mesh that resolved once resolve too, unless the user gave layer lists).
    const floor = best.last();
    if (floor !== undefined && generatedLayouts) {
      const sum = stageSums.get(group);
      if (sum !== undefined && boundFromStageSum(input as Plan, sum) < floor.score.tokensPerSecond) {
        ruledOut(input);
        if (input.recompute === "none") noneBounded = true;
        return;
      }
    }
    try {
      const plan = resolved(input);
      if (floor !== undefined) {
        let sum = stageSums.get(group);
        if (sum === undefined) {
          sum = stageSumLowerBound(model, shape, plan);
          stageSums.set(group, sum);
        }
        if (boundFromStageSum(plan, sum) < floor.score.tokensPerSecond) {
          ruledOut(plan);
          if (plan.recompute === "none") noneBounded = true;
          return;
        }
      }
      // Most scored plans do not fit: their memory alone says so, and their speed is needed only if a
      // list that ranks by speed takes them (the repairable meshes below).
      const memory = memoryCosts(model, shape, plan);
      scored = { plan, score: quickMemoryOf(model, shape, plan, memory) };
      fitting = scored.score.fits ? timed(model, shape, scored, memory) : undefined;
      if (fitting !== undefined) scored = fitting;
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      firstError ??= err;
      return;
    }
    searched++;
    if (fitting !== undefined) {
      feasible++;
      best.offer(fitting);
      if (fitting.plan.pp > 1 && generatedLayouts && pinned.recompute !== "full") {
        const key = `${group} ${fitting.plan.schedule} ${fitting.plan.virtualStages}`;
        const held = meshBest.get(key);
        if (held === undefined || fasterScore(fitting, held) < 0) meshBest.set(key, fitting);
      }
    } else if (revisited === undefined) {
      closest.offer(scored);
    } else {
      const key = planKey(scored.plan);
      if (!revisited.has(key)) closest.offer(scored);
      revisited.add(key);
    }
    // forEachCandidate visits recompute none just before full for the same mesh and knobs: a mesh that
    // fits only with full recomputation is ranked by its speed without it, since the integer program may
    // fit it by recomputing only some layers.
    if (scored.plan.recompute === "none") {
      lastNone = scored;
      noneFits = scored.score.fits;
    }
    else if (scored.plan.recompute === "full" && scored.score.fits && lastNone !== undefined && !lastNone.score.fits) {
      // Timed only if it could enter: the compute bound (an upper bound on its speed) tells when it cannot.
      const floorRepairable = repairable.last();
      const sum = stageSums.get(group);
      const cannot = floorRepairable !== undefined && sum !== undefined &&
        boundFromStageSum(lastNone.plan, sum) * (1 + SPEED_TIE) < floorRepairable.score.tokensPerSecond;
      if (!cannot) repairable.offer(timed(model, shape, lastNone));
    }
  };
  forEachCandidate(model, shape, pinned, visit, skipMesh);
  if (feasible === 0 && pruned > 0) {
    // every mesh that could fit was ruled out: evaluate the pruned ones too, to report the closest (the
    // meshes already visited come round again: each plan is offered once)
    prune = false;
    revisited = new Set(closest.items().map((c) => planKey(c.plan)));
    forEachCandidate(model, shape, pinned, visit, skipMesh);
  }
  if (searched === 0) {
    if (firstError === undefined) {
      // The pins alone may name the cause (heads that do not split over tp, degrees that do not divide
      // the GPUs): resolving them as a plan throws the error that says which field and what is valid.
      const v = pinned.virtualStages;
      if (v !== undefined && v > 1 && pinned.pp === undefined && pinned.layersPerStage === undefined) {
        const works = virtualStageCounts(model, shape);
        if (!works.includes(v)) throw virtualStagesError(model, shape, v, works);
      }
      const schedule = pinnedSchedule(pinned);
      resolvePinsAlone(model, shape, schedule === undefined ? pinned : { ...pinned, schedule });
      if (pinned.microBatch !== undefined) {
        const batch = searchGlobalBatch(model, pinned);
        const perReplica = pinned.dp === undefined ? `global batch ${batch} / dp` : `global batch ${batch} / dp ${pinned.dp} = ${batch / pinned.dp}`;
        const divisors = divisorsOf(pinned.dp === undefined ? batch : Math.floor(batch / pinned.dp)).filter((d) => d <= 64);
        throw new InputError({
          code: "not-divisible", field: "microBatch", value: pinned.microBatch,
          valid: `a divisor of the per-replica batch (${perReplica}) of some mesh, e.g. ${divisors.join(", ")}`,
          reason: "the search keeps the global batch and splits it into whole micro-batches",
        });
      }
    }
    if (firstError !== undefined) throw firstError;
    if (!pinsAnyDimension(pinned)) {
      // Nothing pinned but the GPUs: tp, pp and cp are bounded by the model's heads, layers and sequence,
      // so too many GPUs leave more data-parallel replicas than the global batch has sequences.
      const batch = searchGlobalBatch(model, pinned);
      throw new InputError({
        code: "out-of-range", field: "gpus", value: shape.gpus,
        valid: `fewer GPUs, or a larger --global-batch (now ${batch} sequences)`,
        reason: `no split of ${shape.gpus} GPUs runs ${model.displayName}: with tp, pp and cp bounded by its heads, layers and sequence, every split leaves more data-parallel replicas than sequences in the global batch, or layers that do not divide`,
      });
    }
    throw new InputError({ code: "unsupported", field: "plan flags", value: pinned, valid: "flags that leave at least one valid plan", reason: "no plan matches the pinned dimensions" });
  }

  // Pass 2: the integer program's layout for each shortlisted mesh, evaluated analytically.
  const partitionSeconds: number[] = [];
  const partitionSolvers: string[] = [];
  const analytic = new Map<string, Estimate>();
  // Shortlisted meshes often pose the same program (another split of dp, cp and micro-batch with the same
  // per-stage costs): solve each once.
  const layouts = new Map<string, PartitionSolution | undefined>();
  let laidOut = 0; // fitting layouts the integer program adds to the candidates
  const keep = (plan: Plan) => {
    const e = estimate(model, shape, plan);
    if (e.memory.fits) analytic.set(planKey(plan), e);
  };
  // (those the shortlist already holds are laid out once)
  const shortlisted = new Set(best.items());
  const meshes = [...meshBest.values()].filter((c) => !shortlisted.has(c)).sort(fasterScore).slice(0, shortlist);
  for (const candidate of [...best.items(), ...repairable.items(), ...meshes]) {
    if (candidate.score.fits) keep(candidate.plan);
    // A pinned recomputation is kept as pinned: under "full" every layer stays recomputed (no program:
    // it would trade recomputation for memory), under "none" or "selective" the program adds none. A
    // pinned layout (layers or recomputed layers per stage) is kept as given: no program either.
    if (pinned.recompute === "full" || !generatedLayouts) continue;
    // (ZB-V's lengths priced again without the full recomputation, unless pinned, as a plan of that mode has them)
    const { vPassRatios: _priced, ...unpriced } = candidate.plan;
    const base: Plan = candidate.plan.recompute === "full"
      ? withPricedVPasses(model, shape.spec.gpu, {
        ...unpriced, recompute: "none", recomputeLayersPerStage: candidate.plan.layersPerStage.map(() => 0),
        ...(pinned.vPassRatios === undefined ? {} : { vPassRatios: pinned.vPassRatios }),
      })
      : candidate.plan;
    const problem = { ...partitionProblem(model, shape, base), ...(pinned.recompute === undefined ? {} : { allowRecompute: false }) };
    const key = JSON.stringify(problem);
    let layout = layouts.get(key);
    if (!layouts.has(key)) {
      const t0 = performance.now();
      layout = solvePartition(problem);
      partitionSeconds.push((performance.now() - t0) / 1e3);
      partitionSolvers.push(layout?.solver ?? "none");
      layouts.set(key, layout);
    }
    if (layout === undefined) continue;
    // base carries ZB-V's lengths, so the laid-out plan keeps the order its layout was found for.
    const laid = resolvePlan(model, shape, { ...base, layersPerStage: layout.layersPerStage, recomputeLayersPerStage: layout.recomputeLayersPerStage });
    const known = analytic.size;
    keep(laid);
    // A layout of the program's that fits and is none of the candidates (theirs are even) is one more plan that fits.
    if (analytic.size > known && !sameLayout(laid, base)) laidOut++;
  }
  // Pass 3: `refine` (the simulator) on the analytic best, which sets the final order.
  const refineCount = options.refineCount ?? options.top + 3;
  // Distinct outcomes only: another layout with the same speed and memory would take a place of the top K
  // and then be dropped below, leaving fewer than K plans.
  const sorted = [...analytic.values()].sort(faster);
  let next = 0;
  const chosen: Estimate[] = [];
  let equivalent = 0;
  const takeNext = (): Estimate | undefined => {
    while (next < sorted.length) {
      const e = sorted[next++]!;
      if (chosen.some((k) => sameOutcome(k, e))) {
        equivalent++;
        continue;
      }
      chosen.push(e);
      return e;
    }
    return undefined;
  };
  while (chosen.length < refineCount && takeNext() !== undefined);
  const results = chosen.slice();
  let unrefined = 0;
  if (options.refine !== undefined) {
    const refine = options.refine;
    const maxPasses = options.refineMaxPasses ?? MAX_REFINED_PASSES;
    const refined = (e: Estimate): Estimate => {
      if (passesPerStep(e.plan) <= maxPasses) return refine(model, shape, e.plan);
      unrefined++;
      return e;
    };
    // Smallest steps first (passes per stage times stages), so that a fresh process's JIT has compiled the
    // simulator on them before the largest run; each result keeps its place in the analytic order.
    const order = chosen.map((_, i) => i).sort((a, b) => passesPerStep(chosen[a]!.plan) - passesPerStep(chosen[b]!.plan) || a - b);
    for (const i of order) results[i] = refined(chosen[i]!);
    // A simulated step is at least its analytic one, less at most 0.5%: the simulator adds the waits and
    // overlaps the analytic model averages (over the plans refined in searches of llama3-8b, llama3-70b,
    // llama3-405b, gpt3-175b and mixtral-8x7b on 8 to 16384 H100s, top 30 each, simulated / analytic
    // ranged 0.995 to 2.05; 2026-11-23). So a candidate further down the analytic order can beat the K-th
    // simulated plan while its analytic step is below that plan's: those are simulated too, up to as many
    // again, so that the top K is the simulator's (a plan the simulator slows down no longer keeps a
    // faster one out). One at or above it could gain at most 0.5%, not worth its simulation (Llama 3
    // 405B on 16384 GPUs: 0.2 s more to find a fifth plan 0.001% faster).
    for (let extra = 0; extra < refineCount; extra++) {
      const kth = kthFastestSeconds(results, options.top);
      const candidate = takeNext();
      if (candidate === undefined) break;
      if (kth !== undefined && candidate.time.stepSeconds >= kth) break;
      results.push(refined(candidate));
    }
  }
  const final = rankDistinct(results, options.top);
  const ranked = final.plans;
  equivalent += final.repeats;
  return {
    searched: searched + laidOut,
    feasible: feasible + laidOut,
    laidOut,
    skipped: { statesOverflow: pruned, computeBound: bounded },
    equivalent,
    plans: ranked,
    closest: ranked.length > 0 ? [] : closest.items().map((c) => estimate(model, shape, c.plan)),
    partitionSeconds,
    partitionSolvers,
    unrefined,
  };
}

/**
 * The `top` fastest fitting plans, each outcome once: the same speed and memory by another route (e.g.
 * dp 4 x cp 2 x mb 1 against dp 2 x cp 4 x mb 2) is listed once, the simplest, and counted in `repeats`.
 */
function rankDistinct(results: readonly Estimate[], top: number): { plans: Estimate[]; repeats: number } {
  const plans: Estimate[] = [];
  let repeats = 0;
  for (const e of results.filter((x) => x.memory.fits).sort(faster)) {
    if (plans.some((k) => sameOutcome(k, e))) repeats++;
    else if (plans.length < top) plans.push(e);
  }
  return { plans, repeats };
}

/** The K-th smallest step among the fitting, distinct outcomes; undefined when there are fewer than K. */
function kthFastestSeconds(results: readonly Estimate[], k: number): number | undefined {
  return rankDistinct(results, k).plans[k - 1]?.time.stepSeconds;
}

/** Whether the flags pin any parallel dimension, schedule, batch split or layout (not only the model and GPUs). */
function pinsAnyDimension(p: PlanInput): boolean {
  const dims = [p.dp, p.tp, p.pp, p.cp, p.ep, p.virtualStages, p.microBatch, p.schedule, p.zero, p.recompute, p.layersPerStage, p.recomputeLayersPerStage, p.parameterServers, p.shardGroup];
  return dims.some((d) => d !== undefined);
}

/** Largest count of virtual stages an error suggests. */
const MOST_VIRTUAL_STAGES_SUGGESTED = 16;

/** Counts of virtual stages (2 and up) that some pipeline depth of these GPUs splits the layers into (the ends allowed one layer less). */
function virtualStageCounts(model: ModelSpec, shape: ClusterShape): number[] {
  const depths = divisorsOf(shape.gpus).filter((pp) => pp >= 2 && pp <= model.layers);
  const counts: number[] = [];
  for (let w = 2; w <= MOST_VIRTUAL_STAGES_SUGGESTED; w++) if (depths.some((pp) => layoutExists(model.layers, pp, w))) counts.push(w);
  return counts;
}

/** A pinned --vpp (and no --pp) that no pipeline depth of these GPUs takes; names the counts that would. */
function virtualStagesError(model: ModelSpec, shape: ClusterShape, v: number, works: readonly number[]): InputError {
  return new InputError({
    code: "not-divisible", field: "virtualStages", value: v,
    valid: works.length === 0 ? "1 (no pipeline depth of these GPUs takes virtual stages)" : `1, or one of ${works.join(", ")}`,
    reason: `no pipeline depth pp of ${shape.gpus} GPUs splits ${model.layers} layers into pp x ${v} chunks`,
  });
}
