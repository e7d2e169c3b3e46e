import { microBatchCount } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { chunkOfVirtual, holdsHead } from "../../spec/virtual-stages.js";
import { planVPassRatios, type VPassRatios } from "./zb-v.js";
import { layerActivationBytes, type LayerActivationBytes } from "./activations.js";
import type { CollectiveCost } from "./collectives.js";
import {
  cpCostPerMicroBatch, dpContention, dpCosts, epCostPerMicroBatch, inLineBucketCount, ppSendsOfStage, ppTransfer, resolveLinks, spReplicatedGradCost, tpCostPerMicroBatch,
  type DpCosts, type Links, type PassCosts,
} from "./communication.js";
import { embeddingTimes, headTimes, layerTimes } from "./compute.js";
import { blockingLaunchSeconds } from "./launch.js";
import { tiedEmbeddingSync } from "./tied.js";
import {
  gradientBytesPerParam, inputEmbeddingParams, layerParamsPerRank, modelStateBytes, optimizerShardParams, optimizerStateBytesPerParam, optimizerStepCopyBytes, otherTensorBytes, PARAM_BYTES, runtimeReserveBytes,
  stageParams, type MemoryBreakdown, type RankParams,
} from "./memory.js";

export type ModelStates = Pick<MemoryBreakdown, "parametersBytes" | "gradientsBytes" | "optimizerBytes">;

/**
 * What one pipeline stage's GPU does for one micro-batch, and what it holds: the per-stage costs that
 * both the analytic estimate and the event simulator consume.
 */
export interface StageCost {
  /** Compute of the forward pass. */
  readonly forwardSeconds: number;
  /** Compute of the input-gradient part of the backward (ZB-H1's B), without recomputation. */
  readonly backwardInputSeconds: number;
  /** Compute of the weight-gradient part of the backward (ZB-H1's W). */
  readonly backwardWeightSeconds: number;
  /** Forward work redone before the backward (full recompute layers, selective attention core). */
  readonly recomputeSeconds: number;
  /** Tensor-parallel collectives; on the critical path (not overlapped). */
  readonly tp: PassCosts;
  /** Context-parallel ring; `seconds` is what stays exposed after overlapping attention. */
  readonly cp: PassCosts;
  /** Expert-parallel all-to-alls; on the critical path. */
  readonly ep: PassCosts;
  /**
   * Stage-to-stage transfers that hold this stage per micro-batch (plan.ppBlockingSends: its blocking sends
   * and its blocking receives); 0 when they overlap.
   */
  readonly blockingTransferSeconds: number;
  /**
   * Data-parallel collectives that hold this stage per micro-batch (plan.dpCommBlocking: ZeRO-3's gathers
   * and ZeRO-2/3's reduce-scatters in line with the passes); 0 when they overlap.
   */
  readonly blockingDpSeconds: number;
  /** Data-parallel traffic, grouped by what it can hide behind. */
  readonly dp: DpCosts;
  /**
   * Once per step after the pipeline, before the optimizer: the sum of a tied word embedding's two copies'
   * gradients (tied.ts), on the first stage and the head's; FREE elsewhere.
   */
  readonly tiedSync: CollectiveCost;
  /**
   * The part of the pass seconds above that the model's ends take (the input embedding; the output layer
   * with the final norm and the loss), each with the chunk of this stage that runs it: the first virtual
   * stage's and the last's (spec/virtual-stages.ts chunkOfVirtual). With several chunks per stage
   * (interleaved, ZB-V, whose first stage runs both ends) the simulator gives each chunk its share of the
   * layers and its own ends, not a 1/v share of the stage (simulator/build-pipeline.ts chunkCosts).
   * Empty where the stage holds no end.
   */
  readonly ends: readonly ChunkEndSeconds[];
  /**
   * Once per step, what the first forward of each chunk (index) takes on top of forwardSeconds / v: its
   * GEMM weights' first use as new tensors after the optimizer step (LayerTimes.firstUseSeconds; the
   * executor's TensorFlow.js profile, 0 on GPUs). Under ZeRO 3 every forward gathers new weights, so
   * there it is in forwardSeconds instead and these are 0.
   */
  readonly firstForwardSeconds: readonly number[];
  readonly optimizerSeconds: number;
  readonly states: ModelStates;
  /** Held only while the optimizer step runs, on top of the states (memory.ts optimizerStepCopyBytes). */
  readonly optimizerStepBytes: number;
  /** Parameters on one GPU of this stage. */
  readonly params: number;
}

/** One end of the model (StageCost.ends): the chunk that runs it and its seconds in each pass. */
export interface ChunkEndSeconds {
  readonly chunk: number;
  readonly forwardSeconds: number;
  readonly backwardInputSeconds: number;
  readonly backwardWeightSeconds: number;
}

/** What one stage's GPUs hold besides activations: its model states and the optimizer step's copy. */
export type StageStates = Pick<StageCost, "states" | "optimizerStepBytes" | "params">;

/** The part of PlanCosts that a stage's peak memory needs (estimate.ts worstStageMemory), without any timing. */
export interface MemoryCosts {
  readonly microBatches: number;
  readonly stages: readonly StageStates[];
  readonly activations: LayerActivationBytes;
  /** Tensors besides states and activations (memory.ts otherTensorBytes). */
  readonly otherTensorBytes: number;
  /** Bytes outside the tensors (memory.ts runtimeReserveBytes). */
  readonly reserveBytes: number;
}

export interface PlanCosts extends MemoryCosts {
  readonly links: Links;
  readonly stages: readonly StageCost[];
  /** One activation (or gradient) crossing a stage boundary. */
  readonly ppTransfer: CollectiveCost;
  /** ZB-V: the pass lengths its order is found for (zb-v.ts planVPassRatios). */
  readonly vPassRatios?: VPassRatios;
}

export function stageComputeSeconds(s: StageCost): number {
  return s.forwardSeconds + s.backwardInputSeconds + s.backwardWeightSeconds + s.recomputeSeconds;
}

/** Time of one micro-batch through a stage, with its exposed tp/cp/ep communication and what blocks it in line. */
export function stageMicroBatchSeconds(s: StageCost): number {
  return stageComputeSeconds(s) + s.tp.forward.seconds + s.tp.backward.seconds + s.cp.forward.seconds + s.cp.backward.seconds +
    s.ep.forward.seconds + s.ep.backward.seconds + s.blockingTransferSeconds + s.blockingDpSeconds;
}

/** The part of stageMicroBatchSeconds that the step reports as pp or dp communication rather than as the pipeline's work. */
export function stageInLineCommSeconds(s: StageCost): number {
  return s.blockingTransferSeconds + s.blockingDpSeconds;
}

/**
 * Adam's update reads the master weight, both moments and the gradient, and writes the three states and
 * the 16-bit weight (Kingma & Ba 2015, algorithm 1): K + g + K + 2 bytes per parameter, K the optimizer
 * state (12 in fp32), when one fused kernel does it all; plan.optimizerStepBytesPerParam where given.
 */
export function optimizerBytesPerParam(plan: Pick<Plan, "fp32Gradients" | "optimizerStateBytes" | "optimizerStepBytesPerParam">): number {
  return plan.optimizerStepBytesPerParam ?? 2 * optimizerStateBytesPerParam(plan) + gradientBytesPerParam(plan) + PARAM_BYTES;
}

/**
 * Each micro-batch's addition of its weight gradients into the accumulated ones, where the framework runs it
 * as a pass of its own (plan.gradientAccumulationBytesPerParam, spec/types.ts): that many bytes per
 * parameter the stage holds, streamed at the GPU's element-wise HBM bandwidth. Zero when absent.
 */
export function gradientAccumulationSeconds(plan: Pick<Plan, "gradientAccumulationBytesPerParam">, params: number, bytesPerSecond: number): number {
  return ((plan.gradientAccumulationBytesPerParam ?? 0) * params) / bytesPerSecond;
}

function optimizerSeconds(plan: Plan, paramsInShard: number, bytesPerSecond: number): number {
  if (plan.parameterServers > 0) return 0;
  return (paramsInShard * optimizerBytesPerParam(plan)) / bytesPerSecond;
}

function stageStates(plan: Plan, params: RankParams): StageStates {
  return { states: modelStateBytes(plan, params), optimizerStepBytes: optimizerStepCopyBytes(plan, params), params: params.dense + params.expert };
}

/** A middle stage's ends: none (shared, as the search prices thousands of stages). */
const NO_ENDS: readonly ChunkEndSeconds[] = Object.freeze([]);

/** No first-use cost in any of v chunks (GPUs): one shared array per v, the search prices thousands of stages. */
const NO_FIRST_USE: (readonly number[])[] = [];

/**
 * New weight tensors' first use once a step on each chunk's first forward (StageCost.firstForwardSeconds):
 * the chunk's share of `layers` layers and, on `headChunk`, the output layer's. Zeros (shared) where there
 * is none, or under ZeRO 3, whose every forward pays it instead (planCosts).
 */
function firstForwardSeconds(plan: Plan, layers: number, headChunk: number, layerSeconds: number, headSeconds: number): readonly number[] {
  const v = plan.virtualStages;
  if (plan.zero >= 3 || (layerSeconds === 0 && headSeconds === 0)) return (NO_FIRST_USE[v] ??= Object.freeze(new Array<number>(v).fill(0)));
  const perChunk = (layers / v) * layerSeconds;
  return Array.from({ length: v }, (_, c) => perChunk + (c === headChunk ? headSeconds : 0));
}

/**
 * A middle stage with the layers and recomputed layers of the one before it costs the same: the first and
 * last differ by the embedding and the output layer. Builds each stage once, reusing such repeats.
 */
function perStage<T>(plan: Plan, build: (stage: number) => T): T[] {
  const stages: T[] = [];
  for (let i = 0; i < plan.pp; i++) {
    const prev = i - 1;
    const same = prev > 0 && i < plan.pp - 1 &&
      plan.layersPerStage[i] === plan.layersPerStage[prev] && plan.recomputeLayersPerStage[i] === plan.recomputeLayersPerStage[prev];
    stages.push(same ? stages[prev]! : build(i));
  }
  return stages;
}

/**
 * Only what memory needs (model states per stage, activations per layer, the rest): the search checks
 * that a plan fits with this before it times it, since most plans it scores do not fit.
 */
export function memoryCosts(model: ModelSpec, shape: ClusterShape, plan: Plan): MemoryCosts {
  const perLayer = layerParamsPerRank(model, plan);
  return { ...beyondStates(model, shape, plan, perLayer), stages: perStage(plan, (i) => stageStates(plan, stageParams(model, plan, i, perLayer))) };
}

/** What memory needs besides the stages' states: the micro-batches, one layer's activations, the rest. */
function beyondStates(model: ModelSpec, shape: ClusterShape, plan: Plan, perLayer: RankParams): Omit<MemoryCosts, "stages"> {
  return {
    microBatches: microBatchCount(plan), activations: layerActivationBytes(model, plan),
    otherTensorBytes: otherTensorBytes(model, plan, perLayer), reserveBytes: runtimeReserveBytes(shape.spec.gpu, plan),
  };
}

/**
 * Everything a plan's timing and memory need, per stage. `memory`, when the caller has it already for
 * this plan (memoryCosts: the search checks memory first), is reused instead of computed again.
 */
export function planCosts(model: ModelSpec, shape: ClusterShape, plan: Plan, memory?: MemoryCosts): PlanCosts {
  const gpu = shape.spec.gpu;
  const links = resolveLinks(plan, shape);
  const layer = layerTimes(model, gpu, plan);
  const head = headTimes(model, gpu, plan);
  const embedding = embeddingTimes(model, gpu, plan);
  const perLayer = layerParamsPerRank(model, plan);
  const optimizerBytesPerSecond = gpu.hbmBytesPerSecond * (gpu.efficiency.optimizerBandwidth ?? gpu.efficiency.memoryBandwidth);
  const elementwiseBytesPerSecond = gpu.hbmBytesPerSecond * gpu.efficiency.memoryBandwidth;
  const transfer = ppTransfer(model, plan, links);

  function evaluate(i: number): StageCost {
    const n = plan.layersPerStage[i] ?? 0;
    const r = plan.recomputeLayersPerStage[i] ?? 0;
    const last = holdsHead(plan, i); // the output layer's stage: the last, or ZB-V's first
    const first = i === 0;
    const params = stageParams(model, plan, i, perLayer);
    const held = memory?.stages[i] ?? stageStates(plan, params);
    const states = held.states;
    const coreBackward = layer.backwardInputSeconds - layer.backwardWeightSeconds; // attention core + element-wise
    const headChunk = last ? chunkOfVirtual(plan, plan.pp * plan.virtualStages - 1).chunk : -1;
    // New weight tensors' first use: in every forward under ZeRO 3 (gathered each time), else once a step per chunk.
    const headFirstUse = last ? head.firstUseSeconds : 0;
    const everyForward = plan.zero >= 3 ? n * layer.firstUseSeconds + headFirstUse : 0;
    const forward = n * layer.forwardSeconds + (last ? head.forwardSeconds : 0) + (first ? embedding.forwardSeconds : 0) + everyForward;
    const backwardInput = n * layer.backwardInputSeconds + (last ? head.backwardSeconds / 2 : 0);
    // The weight gradients' pass ends with their addition into the accumulated gradients, where that is a pass
    // of its own; the input embedding's own backward already adds its tables' gradients in (embeddingTimes).
    const accumulated = params.dense + params.expert - (first ? inputEmbeddingParams(model, plan) : 0);
    const backwardWeight = n * layer.backwardWeightSeconds + (last ? head.backwardSeconds / 2 : 0) + (first ? embedding.backwardSeconds : 0) +
      gradientAccumulationSeconds(plan, accumulated, elementwiseBytesPerSecond);
    const recomputedLayerSeconds = layer.forwardSeconds - (plan.recomputeEarlyStop === true ? layer.lastGemmSeconds : 0);
    const recompute = r * recomputedLayerSeconds + (n - r) * layer.selectiveRecomputeSeconds;
    const dp = dpCosts(plan, links, params, n, spReplicatedGradCost(model, plan, links, i), inLineBucketCount(plan, n, first, last));
    // Compute that runs beside the stage's data-parallel collectives is slowed by them (dpContention).
    const c = dpContention(plan, dp, forward, backwardInput + backwardWeight + recompute, gpu.efficiency.commOverlapSlowdown ?? 0);
    // Blocking launches (plan.launchBlocking) leave the host's time to issue each kernel exposed.
    const launch = blockingLaunchSeconds(plan, n, r);
    const ends: readonly ChunkEndSeconds[] = !first && !last ? NO_ENDS : [
      ...(first ? [{ chunk: 0, forwardSeconds: embedding.forwardSeconds, backwardInputSeconds: 0, backwardWeightSeconds: embedding.backwardSeconds }] : []),
      ...(last ? [{ chunk: headChunk, forwardSeconds: head.forwardSeconds, backwardInputSeconds: head.backwardSeconds / 2, backwardWeightSeconds: head.backwardSeconds / 2 }] : []),
    ];
    return {
      forwardSeconds: forward + c.forwardSeconds + launch.forwardSeconds,
      backwardInputSeconds: backwardInput + launch.backwardSeconds,
      backwardWeightSeconds: backwardWeight + c.backwardSeconds,
      recomputeSeconds: recompute + launch.recomputeSeconds,
      tp: tpCostPerMicroBatch(model, plan, links, i, { layer, head }),
      cp: cpCostPerMicroBatch(model, plan, links, i, layer.attentionCoreForwardSeconds, coreBackward),
      ep: epCostPerMicroBatch(model, plan, links, i),
      // Naive model parallelism already puts every transfer on the critical path (ppCriticalTransfers).
      // Each blocking transfer holds both ends; a stage receives as many as it sends (ppSendsOfStage).
      blockingTransferSeconds: plan.ppBlockingSends === true && plan.schedule !== "naive" ? 2 * ppSendsOfStage(plan, i) * transfer.seconds : 0,
      blockingDpSeconds: plan.dpCommBlocking === true ? dp.perMicroBatchForward.seconds + dp.perMicroBatchBackward.seconds : 0,
      dp,
      tiedSync: tiedEmbeddingSync(model, plan, links.pp, i),
      ends,
      firstForwardSeconds: firstForwardSeconds(plan, n, headChunk, layer.firstUseSeconds, headFirstUse),
      optimizerSeconds: optimizerSeconds(plan, optimizerShardParams(plan, params), optimizerBytesPerSecond),
      states,
      optimizerStepBytes: held.optimizerStepBytes,
      params: held.params,
    };
  }

  return {
    ...(memory ?? beyondStates(model, shape, plan, perLayer)), links, stages: perStage(plan, evaluate), ppTransfer: transfer,
    ...(plan.schedule === "zb-v" ? { vPassRatios: planVPassRatios(model, plan) } : {}),
  };
}
