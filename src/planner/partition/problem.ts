import { fillsChunks } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec, Plan, Schedule } from "../../spec/types.js";
import { endsOnStage } from "../../spec/virtual-stages.js";
import { gradientCastPeak, stageActivationBranches, vActivationMoments, withAllocatorCache } from "../cost/memory.js";
import { planCosts, stageMicroBatchSeconds } from "../cost/stages.js";

/**
 * The stage-layout problem of one mesh: how many layers each pipeline stage holds (l_i, a multiple of the
 * virtual stages v, or at the ends one less: layerCounts) and how many of them it fully recomputes
 * (r_i <= l_i). In the cost model a stage's time per micro-batch and its peak memory are affine in
 * (l_i, r_i), with one jump: a stage that recomputes anything rebuilds one layer's activations in its
 * backward. So:
 *   T_i = fixedSeconds_i + perLayerSeconds_i * l_i + perRecomputedLayerSeconds_i * r_i
 *   W_i = perLayerWeightSeconds_i * l_i                                (weight-gradient part, ZB-H1)
 *   M_i = fixedBytes_i + perLayerBytes_i * l_i + perRecomputedLayerBytes_i * r_i + transientBytes_i * [r_i > 0]
 *         (ZB-H1: the larger of that and the backward-end form, StageCoefficients.backwardEnd; 16-bit
 *         gradients: and the optimizer step's, StageCoefficients.optimizerStep; DeepSpeed's BF16_Optimizer:
 *         and the moment after a backward, StageCoefficients.gradientCast)
 * The coefficients differ by stage: the first and last stages carry the embedding, the output layer and
 * the loss, and stage i of 1F1B holds min(p - i, m) micro-batches in flight.
 */
export interface StageCoefficients {
  readonly fixedSeconds: number;
  readonly perLayerSeconds: number;
  readonly perRecomputedLayerSeconds: number;
  readonly perLayerWeightSeconds: number;
  readonly fixedBytes: number;
  readonly perLayerBytes: number;
  readonly perRecomputedLayerBytes: number;
  readonly transientBytes: number;
  /**
   * ZB-H1: the peak when a backward ends (its weight-gradient inputs kept for W) is a second affine form,
   * fixed + perLayer * l + perRecomputedLayerBytes * r (no transient); M_i is the larger of the two.
   */
  readonly backwardEnd?: { readonly fixedBytes: number; readonly perLayerBytes: number; readonly perRecomputedLayerBytes: number };
  /**
   * 16-bit gradients: the peak during the optimizer step (states and their fp32 gradient copy, no
   * activations), fixed + perLayer * l; M_i is the larger of it and the others.
   */
  readonly optimizerStep?: { readonly fixedBytes: number; readonly perLayerBytes: number };
  /**
   * keep16BitGrads: the peak right after a backward, while a gradient is cast to fp32 (memory.ts
   * gradientCastPeak), fixed + perLayer * l + perRecomputedLayer * r with one micro-batch fewer in flight.
   */
  readonly gradientCast?: { readonly fixedBytes: number; readonly perLayerBytes: number; readonly perRecomputedLayerBytes: number };
  /**
   * ZB-V: each candidate peak of its order (memory.ts vActivationMoments) as its own affine form with its
   * transient; these replace the backward-start and backward-end forms, whose maximum is not affine.
   */
  readonly moments?: readonly MomentForm[];
}

export interface MomentForm {
  readonly fixedBytes: number;
  readonly perLayerBytes: number;
  readonly perRecomputedLayerBytes: number;
  readonly transientBytes: number;
}

/**
 * Minimise   maxWeight * max_i T_i + sumWeight * sum_i (T_i - weightGradFactor * W_i)
 * subject to sum_i l_i = layers, l_i in layerCounts (multiples of v; at the ends also one less),
 * 0 <= r_i <= l_i, M_i <= capacity.
 * The weights make the objective the schedule's pipelined time (pipeline.ts): 1F1B/GPipe (m-1, 1, 0);
 * interleaved (m - 1/v, 1/v, 0); ZB-H1 (m-1, 1, 2), dropping the critical stage's 2W; ZB-V (m - 1/2, 1/2, 2),
 * dropping its W; naive (0, m, 0).
 */
export interface PartitionProblem {
  readonly layers: number;
  readonly stages: number;
  readonly layerMultiple: number;
  /** Where the model's ends sit (spec/virtual-stages.ts): ZB-V's first stage holds both. */
  readonly schedule: Schedule;
  readonly capacityBytes: number;
  readonly allowRecompute: boolean;
  readonly maxWeight: number;
  readonly sumWeight: number;
  readonly weightGradFactor: number;
  readonly coefficients: readonly StageCoefficients[];
}

export interface PartitionSolution {
  readonly layersPerStage: number[];
  readonly recomputeLayersPerStage: number[];
  /** The objective: the schedule's pipelined seconds as the problem states it. */
  readonly objectiveSeconds: number;
  /** Which exact method answered: the cuts alone (one option left per stage), the MILP solver, or the threshold algorithm when the solver ran out of time. */
  readonly solver?: "cuts" | "javascript-lp-solver" | "threshold";
  readonly solveMilliseconds?: number;
}

/** Relative slack when comparing memory with capacity, so that the solver's floating point and an exact count agree on ties. */
export const MEMORY_TOLERANCE = 1e-9;

export function fitsCapacity(p: PartitionProblem, bytes: number): boolean {
  return bytes <= p.capacityBytes * (1 + MEMORY_TOLERANCE);
}

/**
 * Layers stage `stage` may hold, ascending: multiples of v, and under interleaving (v > 1) the first and
 * last stages also one less, their embedding or output taking a layer's place in a chunk (Megatron-Core's
 * account_for_embedding_in_pipeline_split / account_for_loss_in_pipeline_split; the same rule as
 * resolvePlan's). Bounded by the layers the other stages leave at their fewest.
 */
export function layerCounts(p: Pick<PartitionProblem, "layers" | "stages" | "layerMultiple" | "schedule">, stage: number): number[] {
  const v = p.layerMultiple;
  const shape = { pp: p.stages, virtualStages: v, schedule: p.schedule };
  const fewest = (i: number) => Math.max(1, v - Math.min(endsOnStage(shape, i), v - 1));
  let others = 0;
  for (let i = 0; i < p.stages; i++) if (i !== stage) others += fewest(i);
  const out: number[] = [];
  for (let l = fewest(stage); l <= p.layers - others; l++) if (fillsChunks(l, v, endsOnStage(shape, stage))) out.push(l);
  return out;
}

/** Whether `layers` can be laid out on pp stages of v chunks by layerCounts' rule (ZB-V: its two chunks, both ends on the first stage). */
export function layoutExists(layers: number, pp: number, v: number, schedule: Schedule = "interleaved"): boolean {
  if (schedule === "zb-v") return pp >= 2 && layers >= 2 * pp - 1;
  if (v === 1) return layers >= pp;
  const short = (v - (layers % v)) % v; // layers one short of a multiple of v at one or both ends
  return pp >= 2 && short <= 2 && layers + short >= pp * v;
}

export function stageSeconds(c: StageCoefficients, l: number, r: number): number {
  return c.fixedSeconds + c.perLayerSeconds * l + c.perRecomputedLayerSeconds * r;
}

export function stageBytes(c: StageCoefficients, l: number, r: number): number {
  const form = (f: MomentForm) => f.fixedBytes + f.perLayerBytes * l + f.perRecomputedLayerBytes * r + (r > 0 ? f.transientBytes : 0);
  const start = c.moments === undefined ? form(c) : Math.max(...c.moments.map(form));
  const end = c.backwardEnd === undefined ? start : c.backwardEnd.fixedBytes + c.backwardEnd.perLayerBytes * l + c.backwardEnd.perRecomputedLayerBytes * r;
  const step = c.optimizerStep === undefined ? start : c.optimizerStep.fixedBytes + c.optimizerStep.perLayerBytes * l;
  const g = c.gradientCast;
  const cast = g === undefined ? start : g.fixedBytes + g.perLayerBytes * l + g.perRecomputedLayerBytes * r;
  return Math.max(start, end, step, cast);
}

export function objectiveSeconds(p: PartitionProblem, layers: readonly number[], recomputed: readonly number[]): number {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < p.stages; i++) {
    const c = p.coefficients[i]!;
    const t = stageSeconds(c, layers[i]!, recomputed[i]!);
    max = Math.max(max, t);
    sum += t - p.weightGradFactor * c.perLayerWeightSeconds * layers[i]!;
  }
  return p.maxWeight * max + p.sumWeight * sum;
}

export function objectiveWeights(plan: Plan, microBatches: number): Pick<PartitionProblem, "maxWeight" | "sumWeight" | "weightGradFactor"> {
  const m = microBatches;
  switch (plan.schedule) {
    case "naive":
      return { maxWeight: 0, sumWeight: m, weightGradFactor: 0 };
    case "interleaved":
      return { maxWeight: m - 1 / plan.virtualStages, sumWeight: 1 / plan.virtualStages, weightGradFactor: 0 };
    case "zb-h1":
      return { maxWeight: m - 1, sumWeight: 1, weightGradFactor: 2 };
    case "zb-v":
      return { maxWeight: m - 1 / plan.virtualStages, sumWeight: 1 / plan.virtualStages, weightGradFactor: 2 };
    case "gpipe":
    case "1f1b":
      return { maxWeight: m - 1, sumWeight: 1, weightGradFactor: 0 };
  }
}

/**
 * Reads the coefficients off the cost model itself, by evaluating the plan with every stage holding
 * l in {v, 2v} layers and r in {0, 1, 2} recomputed: since the model is affine in (l, r) apart from the
 * recompute jump, four probes give every coefficient exactly, and the program stays consistent with
 * whatever the cost model counts (tested in test/planner/partition.test.ts).
 */
/** An affine form in the stage's layers (the backward-end or optimizer-step peak) from two probes at v and 2v layers. */
function layerForm(at1: number, at2: number, v: number): { fixedBytes: number; perLayerBytes: number } {
  const perLayerBytes = (at2 - at1) / v;
  return { fixedBytes: at1 - perLayerBytes * v, perLayerBytes };
}

export function partitionProblem(model: ModelSpec, shape: ClusterShape, plan: Plan): PartitionProblem {
  const v = plan.virtualStages;
  const p = plan.pp;
  const probe = (l: number, r: number) => {
    const probePlan: Plan = { ...plan, layersPerStage: new Array<number>(p).fill(l), recomputeLayersPerStage: new Array<number>(p).fill(r) };
    const costs = planCosts(model, shape, probePlan);
    return costs.stages.map((s, i) => {
      const rest = s.states.parametersBytes + s.states.gradientsBytes + s.states.optimizerBytes + costs.otherTensorBytes;
      // The device bytes with `added` beside the states (estimate.ts: reserve and allocator cache included).
      const peak = (added: number) => withAllocatorCache(probePlan, costs.reserveBytes, rest + added);
      const branches = stageActivationBranches(model, probePlan, i, costs.microBatches, costs.activations);
      const cast = gradientCastPeak(model, probePlan, i, costs.microBatches, costs.activations);
      return {
        seconds: stageMicroBatchSeconds(s),
        weight: s.backwardWeightSeconds,
        bytes: peak(branches.backwardStart),
        endBytes: peak(branches.backwardEnd),
        stepBytes: peak(s.optimizerStepBytes),
        stepCopies: s.optimizerStepBytes > 0,
        castBytes: cast === undefined ? undefined : peak(cast.activationsBytes + cast.castBytes),
        moments: vActivationMoments(model, probePlan, i, costs.microBatches, costs.activations)?.map((bytes) => peak(bytes)),
      };
    });
  };
  const a = probe(v, 0);
  const b = probe(2 * v, 0);
  const c = probe(2 * v, 1);
  const d = probe(2 * v, 2);
  const coefficients = a.map((_, i): StageCoefficients => {
    const momentForm = (k: number): MomentForm => {
      const [at, bt, ct, dt] = [a, b, c, d].map((x) => x[i]!.moments![k]!) as [number, number, number, number];
      const perLayer = (bt - at) / v;
      const perRecomputed = dt - ct;
      return { fixedBytes: at - perLayer * v, perLayerBytes: perLayer, perRecomputedLayerBytes: perRecomputed, transientBytes: ct - bt - perRecomputed };
    };
    const perLayerSeconds = (b[i]!.seconds - a[i]!.seconds) / v;
    const perLayerBytes = (b[i]!.bytes - a[i]!.bytes) / v;
    const perRecomputedLayerBytes = d[i]!.bytes - c[i]!.bytes;
    const perLayerWeightSeconds = (b[i]!.weight - a[i]!.weight) / v;
    return {
      fixedSeconds: a[i]!.seconds - perLayerSeconds * v,
      perLayerSeconds,
      perRecomputedLayerSeconds: c[i]!.seconds - b[i]!.seconds,
      perLayerWeightSeconds,
      fixedBytes: a[i]!.bytes - perLayerBytes * v,
      perLayerBytes,
      perRecomputedLayerBytes,
      transientBytes: c[i]!.bytes - b[i]!.bytes - perRecomputedLayerBytes,
      // W keeps a recomputed layer's rebuilt inputs (memory.ts stageWeightGradInputBytes): its own slope in r.
      ...(plan.schedule === "zb-h1" ? { backwardEnd: { ...layerForm(a[i]!.endBytes, b[i]!.endBytes, v), perRecomputedLayerBytes: d[i]!.endBytes - c[i]!.endBytes } } : {}),
      ...(a[i]!.moments === undefined ? {} : { moments: a[i]!.moments!.map((_, k) => momentForm(k)) }),
      ...(a[i]!.stepCopies ? { optimizerStep: layerForm(a[i]!.stepBytes, b[i]!.stepBytes, v) } : {}),
      ...(a[i]!.castBytes === undefined ? {} : {
        gradientCast: { ...layerForm(a[i]!.castBytes!, b[i]!.castBytes!, v), perRecomputedLayerBytes: c[i]!.castBytes! - b[i]!.castBytes! },
      }),
    };
  });
  return {
    layers: model.layers,
    stages: p,
    layerMultiple: v,
    schedule: plan.schedule,
    capacityBytes: shape.spec.gpu.memoryBytes,
    allowRecompute: true,
    ...objectiveWeights(plan, planCosts(model, shape, plan).microBatches),
    coefficients,
  };
}
