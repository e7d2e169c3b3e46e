import type { ClusterShape, GpuSpec, ModelSpec, Plan } from "../../spec/types.js";
import { kvHeadsPerRank } from "./activations.js";
import { collective, FREE, plus, times, type CollectiveCost } from "./collectives.js";
import { layerTimes } from "./compute.js";
import { gradientBytesPerParam, PARAM_BYTES, type RankParams } from "./memory.js";
import { effectiveLink, groupPlacement, type EffectiveLink, type GroupKind } from "./placement.js";

/** The link each group's collectives cross, resolved once per plan. */
export interface Links {
  readonly tp: EffectiveLink;
  readonly cp: EffectiveLink;
  readonly dp: EffectiveLink;
  readonly edp: EffectiveLink;
  readonly ep: EffectiveLink;
  readonly pp: EffectiveLink;
  /** The GPU whose GEMMs a tensor-parallel collective overlaps with under --tp-comm-overlap. */
  readonly gpu?: GpuSpec;
}

export function resolveLinks(plan: Plan, shape: ClusterShape): Links {
  const link = (kind: GroupKind) => effectiveLink(groupPlacement(kind, plan, shape.gpusPerNode), shape);
  return { tp: link("tp"), cp: link("cp"), dp: link("dp"), edp: link("edp"), ep: link("ep"), pp: link("pp"), gpu: shape.spec.gpu };
}

/**
 * With --tp-comm-overlap a layer's all-gathers and reduce-scatters are split into chunks and pipelined
 * with the GEMMs that consume or produce them (Wang et al. 2023, "Overlap Communication with Dependent
 * Computation via Decomposition in Large Deep Learning Models", ASPLOS; Transformer Engine userbuffers),
 * so a layer's collectives cost only what exceeds its linear GEMMs: the forward GEMMs forward, the input-
 * and weight-gradient GEMMs backward. The embedding's and output layer's collectives stay exposed.
 */
function overlapWindow(model: ModelSpec, plan: Plan, links: Links): { forward: number; backward: number } {
  if (plan.tpCommOverlap !== true || links.gpu === undefined) return { forward: 0, backward: 0 };
  const linear = layerTimes(model, links.gpu, plan).backwardWeightSeconds; // the layer's linear GEMMs, one pass
  return { forward: linear, backward: 2 * linear };
}

function exposedBeyond(c: CollectiveCost, windowSeconds: number): CollectiveCost {
  return { bytes: c.bytes, seconds: Math.max(0, c.seconds - windowSeconds) };
}

function tokensPerRank(plan: Plan): number {
  return (plan.microBatch * plan.seqLen) / plan.cp;
}

/** Per micro-batch on one stage: what the forward and the backward (with any recomputation) move and expose. */
export interface PassCosts {
  readonly forward: CollectiveCost;
  readonly backward: CollectiveCost;
}

const NO_PASS: PassCosts = { forward: FREE, backward: FREE };

export function passTotal(c: PassCosts): CollectiveCost {
  return plus(c.forward, c.backward);
}

/**
 * Megatron tensor parallel (Shoeybi et al. 2019, section 3): per layer two all-reduces forward and two
 * backward of the b*s*h activation; with sequence parallel each all-reduce becomes an all-gather plus a
 * reduce-scatter of the same total volume (Korthikanti et al. 2022, section 4.2.2). A fully recomputed
 * layer repeats its forward collectives. The vocabulary-parallel embedding reduces its output forward; the
 * output layer gathers its input (SP) or reduces its input gradient.
 */
export function tpCostPerMicroBatch(model: ModelSpec, plan: Plan, links: Links, stage: number): PassCosts {
  const t = plan.tp;
  if (t <= 1) return NO_PASS;
  const bytes = 2 * tokensPerRank(plan) * model.hiddenSize;
  const ar = collective("all-reduce", t, bytes, links.tp);
  const ag = collective("all-gather", t, bytes, links.tp);
  const rs = collective("reduce-scatter", t, bytes, links.tp);
  const sp = plan.sequenceParallel;
  const perLayer = sp ? plus(times(ag, 2), times(rs, 2)) : times(ar, 2);
  const layers = plan.layersPerStage[stage] ?? 0;
  const recomputed = plan.recomputeLayersPerStage[stage] ?? 0;
  const window = overlapWindow(model, plan, links);
  const forwardLayer = exposedBeyond(perLayer, window.forward);
  let forward = times(forwardLayer, layers);
  let backward = plus(times(exposedBeyond(perLayer, window.backward), layers), times(forwardLayer, recomputed));
  if (stage === 0) {
    forward = plus(forward, sp ? rs : ar); // vocabulary-parallel embedding output
    if (sp) backward = plus(backward, ag);
  }
  if (stage === plan.pp - 1) {
    if (sp) forward = plus(forward, ag); // gather the output layer's input
    backward = plus(backward, sp ? rs : ar);
  }
  return { forward, backward };
}

/**
 * Context parallel as ring attention (Liu et al. 2023; Megatron-LM's CP): each layer passes K and V chunks
 * round the ring in cp-1 hops, each hop hidden behind the attention of one block; the backward passes
 * K, V and their gradients. `seconds` here is the exposed time: what a hop takes beyond its block's compute.
 */
export function cpCostPerMicroBatch(
  model: ModelSpec, plan: Plan, links: Links, stage: number, coreForwardSeconds: number, coreBackwardSeconds: number,
): PassCosts {
  const c = plan.cp;
  if (c <= 1) return NO_PASS;
  const chunk = 2 * 2 * tokensPerRank(plan) * kvHeadsPerRank(model, plan.tp) * model.headDim; // K and V, 16-bit
  const fwdHop = collective("send", 2, chunk, links.cp);
  const bwdHop = collective("send", 2, 2 * chunk, links.cp);
  const fwdLayer = { bytes: (c - 1) * fwdHop.bytes, seconds: (c - 1) * Math.max(0, fwdHop.seconds - coreForwardSeconds / c) };
  const bwdLayer = { bytes: (c - 1) * bwdHop.bytes, seconds: (c - 1) * Math.max(0, bwdHop.seconds - coreBackwardSeconds / c) };
  const layers = plan.layersPerStage[stage] ?? 0;
  const recomputed = plan.recomputeLayersPerStage[stage] ?? 0;
  return { forward: times(fwdLayer, layers), backward: plus(times(fwdLayer, recomputed), times(bwdLayer, layers)) };
}

/**
 * Expert parallel (Lepikhin et al. 2020, GShard): each MoE layer dispatches its tokens' topK copies to the
 * experts' ranks and combines the results with two all-to-alls forward and two backward.
 */
export function epCostPerMicroBatch(model: ModelSpec, plan: Plan, links: Links, stage: number): PassCosts {
  if (plan.ep <= 1 || model.moe === undefined) return NO_PASS;
  const r = plan.sequenceParallel ? plan.tp : 1;
  const bytes = (2 * tokensPerRank(plan) * model.moe.topK * model.hiddenSize) / r;
  const a2a = times(collective("all-to-all", plan.ep, bytes, links.ep), 2);
  const layers = plan.layersPerStage[stage] ?? 0;
  const recomputed = plan.recomputeLayersPerStage[stage] ?? 0;
  return { forward: times(a2a, layers), backward: times(a2a, layers + recomputed) };
}

/** One activation (or its gradient) crossing a stage boundary. */
export function ppTransfer(model: ModelSpec, plan: Plan, links: Links): CollectiveCost {
  if (plan.pp <= 1) return FREE;
  const r = plan.sequenceParallel ? plan.tp : 1;
  return collective("send", 2, (2 * tokensPerRank(plan) * model.hiddenSize) / r, links.pp);
}

/** Sends per micro-batch by the busiest stage: v forward (none out of the last chunk) and v backward (none out of the first). */
export function ppSendsPerMicroBatch(plan: Plan): number {
  if (plan.pp <= 1) return 0;
  const v = plan.virtualStages;
  let most = 0;
  for (let i = 0; i < plan.pp; i++) most = Math.max(most, v - (i === plan.pp - 1 ? 1 : 0) + v - (i === 0 ? 1 : 0));
  return most;
}

/** Data-parallel traffic of one GPU, grouped by what it can hide behind. */
export interface DpCosts {
  /** Once per step, behind the last micro-batch's backward (gradient all-reduce or reduce-scatter). */
  readonly reduceOnce: CollectiveCost;
  /** Once per step, behind the next step's first forward (ZeRO-1/2 parameter all-gather). */
  readonly gatherOnce: CollectiveCost;
  /** Every micro-batch, behind its forward (ZeRO-3 parameter gather with prefetch). */
  readonly perMicroBatchForward: CollectiveCost;
  /** Every micro-batch, behind its backward (ZeRO-2 gradient reduce-scatter; ZeRO-3 gather and reduce-scatter). */
  readonly perMicroBatchBackward: CollectiveCost;
}

const NO_DP: DpCosts = { reduceOnce: FREE, gatherOnce: FREE, perMicroBatchForward: FREE, perMicroBatchBackward: FREE };

/**
 * Gradient reduction and, under ZeRO, parameter gathering (Rajbhandari et al. 2020, section 7: stage 1 and
 * 2 move 2x the parameters per step like an all-reduce, stage 3 1.5x). Stage 2 and 3 reduce every
 * micro-batch, since a sharded gradient cannot accumulate locally. Dense weights reduce over dp*cp, expert
 * weights over dp*cp/ep.
 */
export function dpCosts(plan: Plan, links: Links, params: RankParams): DpCosts {
  if (plan.parameterServers > 0) return NO_DP;
  const g = gradientBytesPerParam(plan);
  const groups: [number, number, EffectiveLink][] = [
    [plan.dp * plan.cp, params.dense, links.dp],
    [(plan.dp * plan.cp) / plan.ep, params.expert, links.edp],
  ];
  let out = NO_DP;
  for (const [n, count, link] of groups) {
    if (n <= 1 || count === 0) continue;
    const rs = collective("reduce-scatter", n, g * count, link);
    const ag = collective("all-gather", n, PARAM_BYTES * count, link);
    const next: DpCosts =
      plan.zero === 0 ? { ...NO_DP, reduceOnce: collective("all-reduce", n, g * count, link) }
      : plan.zero === 1 ? { ...NO_DP, reduceOnce: rs, gatherOnce: ag }
      : plan.zero === 2 ? { ...NO_DP, gatherOnce: ag, perMicroBatchBackward: rs }
      : { ...NO_DP, perMicroBatchForward: ag, perMicroBatchBackward: plus(ag, rs) };
    out = {
      reduceOnce: plus(out.reduceOnce, next.reduceOnce),
      gatherOnce: plus(out.gatherOnce, next.gatherOnce),
      perMicroBatchForward: plus(out.perMicroBatchForward, next.perMicroBatchForward),
      perMicroBatchBackward: plus(out.perMicroBatchBackward, next.perMicroBatchBackward),
    };
  }
  return out;
}

export function dpExposedSeconds(c: DpCosts, microBatches: number, forwardSeconds: number, backwardSeconds: number): number {
  const hide = (cost: CollectiveCost, window: number) => Math.max(0, cost.seconds - window);
  return (
    hide(c.reduceOnce, backwardSeconds) +
    hide(c.gatherOnce, forwardSeconds) +
    microBatches * (hide(c.perMicroBatchForward, forwardSeconds) + hide(c.perMicroBatchBackward, backwardSeconds))
  );
}

export function dpBytes(c: DpCosts, microBatches: number): number {
  return c.reduceOnce.bytes + c.gatherOnce.bytes + microBatches * (c.perMicroBatchForward.bytes + c.perMicroBatchBackward.bytes);
}
