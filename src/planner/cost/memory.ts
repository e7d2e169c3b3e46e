import { MASTER_PARAM_BYTES, OPTIMIZER_STATE_BYTES } from "../../spec/plan.js";
import type { GpuSpec, ModelSpec, Plan } from "../../spec/types.js";
import { holdsHead, separateHeadCopy, splitsBackward } from "../../spec/virtual-stages.js";
import { attentionWidthsPerRank, BYTES_16, inFlightMicroBatches, keptBytes, weightGradInputBytes, type LayerActivationBytes } from "./activations.js";
import { layerParams, normParams } from "./params.js";
import { planVPassRatios, zbvOrder } from "./zb-v.js";

/** Parameters one GPU holds, split by how they are sharded for ZeRO (dense over dp*cp, experts over dp*cp/ep). */
export interface RankParams {
  readonly dense: number;
  readonly expert: number;
}

/** Bytes per parameter for mixed-precision Adam (Rajbhandari et al. 2020, ZeRO, section 3.1). */
export const PARAM_BYTES = 2; // 16-bit weights

/** Optimizer state per parameter: the plan's (optimizerStateBytes), else mixed-precision Adam's 12. */
export function optimizerStateBytesPerParam(plan: Pick<Plan, "optimizerStateBytes">): number {
  return plan.optimizerStateBytes ?? OPTIMIZER_STATE_BYTES;
}

export function gradientBytesPerParam(plan: Pick<Plan, "fp32Gradients">): number {
  return plan.fp32Gradients ? 4 : 2; // Megatron keeps fp32 main grads under bf16; ZeRO's recipe 16-bit
}

/**
 * Gradient bytes held per parameter: the accumulated gradient (gradientBytesPerParam) and, with
 * plan.keep16BitGrads, the 16-bit gradient autograd wrote beside its fp32 accumulator (DeepSpeed's
 * BF16_Optimizer adds each backward's 16-bit grads into fp32 ones and clears the 16-bit ones only when
 * the next backward starts: deepspeed/runtime/bf16_optimizer.py, backward() and update_hp_grads with
 * clear_lp_grads=False).
 */
export function gradientMemoryBytesPerParam(plan: Pick<Plan, "fp32Gradients" | "keep16BitGrads">): number {
  return gradientBytesPerParam(plan) + (plan.keep16BitGrads === true ? 2 : 0);
}

/** fp32 bytes per parameter of the gradient copy an optimizer step makes when gradients are 16-bit. */
export const STEP_GRADIENT_COPY_BYTES = 4;

/** One transformer layer's parameters on one tensor-parallel rank. */
export function layerParamsPerRank(model: ModelSpec, plan: Pick<Plan, "tp" | "ep">): RankParams {
  const t = plan.tp;
  const lp = layerParams(model);
  const h = model.hiddenSize;
  const { q, kv, qkv } = attentionWidthsPerRank(model, t);
  const qkvBias = model.linearBias || model.qkvBias ? qkv : 0;
  const outBias = model.linearBias ? h : 0; // row-parallel bias is replicated
  const attention = 2 * h * q + 2 * h * kv + qkvBias + outBias;
  // The MLP's second (row-parallel) matrix adds its bias after the reduction, so every tp rank holds all
  // h of it (Megatron-LM tensor_parallel/layers.py RowParallelLinear: bias of output_size, not partitioned);
  // the column-parallel biases split with their matrices.
  const rowBias = model.linearBias ? h : 0;
  const mlp = (lp.mlpPerExpert - rowBias) / t + rowBias;
  const replicated = lp.norms + lp.router;
  if (model.moe === undefined) return { dense: attention + mlp + replicated, expert: 0 };
  return { dense: attention + replicated, expert: (mlp * model.moe.experts) / plan.ep };
}

/** The input embedding's tables on the first stage, per rank: the token table's V/tp rows and a learned position table. */
export function inputEmbeddingParams(model: ModelSpec, plan: Pick<Plan, "tp">): number {
  const h = model.hiddenSize;
  return (model.vocabSize * h) / plan.tp + (model.positionEmbedding === "learned" ? model.seqLen * h : 0);
}

/** Parameters on one GPU of pipeline stage `stage` (embedding on the first, output layer and final norm on the head stage: the last, or ZB-V's first). */
export function stageParams(model: ModelSpec, plan: Plan, stage: number, perLayer: RankParams): RankParams {
  const layers = plan.layersPerStage[stage] ?? 0;
  let dense = layers * perLayer.dense;
  const h = model.hiddenSize;
  if (stage === 0) dense += inputEmbeddingParams(model, plan) + (model.embeddingNorm === true ? normParams(model) : 0);
  if (holdsHead(plan, stage)) {
    // A tied output layer still needs its own copy when it sits on another stage than the embedding
    // (Megatron-LM keeps a copy on the last stage and all-reduces the two gradients); ZB-V's V brings it
    // back to the embedding's stage.
    dense += (separateHeadCopy(plan, model.tiedEmbeddings) ? (model.vocabSize * h) / plan.tp : 0) + normParams(model);
  }
  return { dense, expert: layers * perLayer.expert };
}

export interface MemoryBreakdown {
  readonly parametersBytes: number;
  readonly gradientsBytes: number;
  readonly optimizerBytes: number;
  readonly activationsBytes: number;
  readonly otherBytes: number;
}

export function totalBytes(m: MemoryBreakdown): number {
  return m.parametersBytes + m.gradientsBytes + m.optimizerBytes + m.activationsBytes + m.otherBytes;
}

/**
 * The data-parallel ranks that share one shard of the dense model states: one group of shardGroup ranks
 * under hybrid sharding (resolvePlan allows it with ep = 1 only), else all dp * cp ranks.
 */
export function zeroShardRanks(plan: Pick<Plan, "dp" | "cp" | "shardGroup">): number {
  return plan.shardGroup ?? plan.dp * plan.cp;
}

/** Model states on one GPU: ZeRO stage 1 shards optimizer states, 2 also gradients, 3 also parameters. */
export type StatePlan = Pick<Plan, "zero" | "dp" | "cp" | "ep" | "parameterServers" | "fp32Gradients" | "keep16BitGrads" | "shardGroup" | "optimizerStateBytes" | "fp32ShardOnly">;

/** Parameters one GPU holds a shard of at ZeRO stage `stage` (all of them below it). */
function shardedParams(plan: StatePlan, params: RankParams, stage: number): number {
  const denseShard = zeroShardRanks(plan);
  if (stage > plan.zero) return params.dense + params.expert;
  return params.dense / denseShard + params.expert / (denseShard / plan.ep);
}

/** Parameters whose optimizer state one GPU updates: its shard at ZeRO 1 and above, else all it holds. */
export function optimizerShardParams(plan: StatePlan, params: RankParams): number {
  return shardedParams(plan, params, 1);
}

/**
 * Under plan.fp32ShardOnly (FSDP) the fp32 master shard is the parameter: counted as parameters
 * (MASTER_PARAM_BYTES) and taken out of the optimizer states, with no 16-bit copy stored.
 */
export function modelStateBytes(plan: StatePlan, params: RankParams): Pick<MemoryBreakdown, "parametersBytes" | "gradientsBytes" | "optimizerBytes"> {
  if (plan.fp32ShardOnly === true) {
    const shard = shardedParams(plan, params, 3);
    return {
      parametersBytes: MASTER_PARAM_BYTES * shard,
      gradientsBytes: gradientMemoryBytesPerParam(plan) * shard,
      optimizerBytes: (optimizerStateBytesPerParam(plan) - MASTER_PARAM_BYTES) * shard, // resolvePlan keeps it >= 4
    };
  }
  return {
    parametersBytes: PARAM_BYTES * shardedParams(plan, params, 3),
    gradientsBytes: gradientMemoryBytesPerParam(plan) * shardedParams(plan, params, 2),
    // With parameter servers the optimizer lives on the servers, not on the workers.
    optimizerBytes: plan.parameterServers > 0 ? 0 : optimizerStateBytesPerParam(plan) * shardedParams(plan, params, 1),
  };
}

/**
 * What the optimizer step adds while it runs, when gradients are 16-bit: an fp32 copy of the gradients
 * of the shard it updates, made before the update and dropped after it (Megatron-LM optimizer.py
 * _copy_model_grads_to_main_grads, `main_param.grad = model_grad.float()`; DeepSpeed ZeRO-1/2
 * stage_1_and_2.py step, the gradient partition flattened and cast to fp32). The activations are gone
 * by then, so a stage's peak is the larger of its backward peak and its states plus this. Nothing with
 * fp32 gradients (the optimizer reads them as they are) or with parameter servers (the update is theirs).
 */
export function optimizerStepCopyBytes(plan: StatePlan, params: RankParams): number {
  if (plan.fp32Gradients || plan.parameterServers > 0) return 0;
  return STEP_GRADIENT_COPY_BYTES * shardedParams(plan, params, 1);
}

/**
 * Under plan.keep16BitGrads (DeepSpeed's BF16_Optimizer), what the stage holds right after one
 * micro-batch's backward, when the optimizer folds that backward's 16-bit gradients into its fp32
 * accumulators one weight at a time (deepspeed/runtime/bf16_optimizer.py update_hp_grads, after every
 * backward: `hp_grad.data.add_(lp.grad.data.to(hp_grad.dtype)...)`): an fp32 copy of the largest weight's
 * gradient (the embedding or output shard, vocab/tp x h, on the end stages; the largest layer matrix
 * elsewhere), while one micro-batch fewer is in flight. Measured on an H100 (scripts/gpu/memory_step.py,
 * which accumulates the same way): it sets the peak of r1306's first stage. 0 without keep16BitGrads.
 */
export function gradientCastPeak(model: ModelSpec, plan: Plan, stage: number, microBatches: number, a: LayerActivationBytes): { activationsBytes: number; castBytes: number } | undefined {
  if (plan.keep16BitGrads !== true) return undefined;
  const h = model.hiddenSize;
  let largest = h * Math.max(model.ffnHiddenSize / plan.tp, attentionWidthsPerRank(model, plan.tp).qkv);
  const end = stage === 0 || (holdsHead(plan, stage) && separateHeadCopy(plan, model.tiedEmbeddings));
  if (end) largest = Math.max(largest, (model.vocabSize * h) / plan.tp);
  const inFlight = inFlightMicroBatches(plan, stage, microBatches, planVPassRatios(model, plan));
  return { activationsBytes: Math.max(0, inFlight - 1) * stagePerMicroBatchBytes(model, plan, stage, a), castBytes: 4 * largest };
}

/**
 * A lower bound on any stage's peak for a mesh, whatever its micro-batch, schedule, recompute and layout:
 * the model states of the average stage (the worst stage holds at least the average, and states are
 * linear in parameters) with the runtime's reserve and the allocator's cache. The search uses it to skip meshes early.
 */
export function peakBytesLowerBound(model: ModelSpec, gpu: GpuSpec, plan: StatePlan & Pick<Plan, "tp" | "pp" | "runtimeReserveBytes" | "allocatorCacheShare">): number {
  const perLayer = layerParamsPerRank(model, plan);
  const h = model.hiddenSize;
  // A tied output layer's copy is left out: ZB-V, which the mesh does not rule out, keeps none.
  const ends = inputEmbeddingParams(model, plan) + (!model.tiedEmbeddings ? (model.vocabSize * h) / plan.tp : 0) + normParams(model);
  const average: RankParams = {
    dense: (model.layers * perLayer.dense + ends) / plan.pp,
    expert: (model.layers * perLayer.expert) / plan.pp,
  };
  const s = modelStateBytes(plan, average);
  return withAllocatorCache(plan, runtimeReserveBytes(gpu, plan), s.parametersBytes + s.gradientsBytes + s.optimizerBytes);
}

/** Bytes outside the tensors (context, kernels, communicators): the plan's stack's where it gives them, else the GPU file's. */
export function runtimeReserveBytes(gpu: GpuSpec, plan: Pick<Plan, "runtimeReserveBytes">): number {
  return plan.runtimeReserveBytes ?? gpu.runtimeReserveBytes;
}

/**
 * A stage's peak device bytes from the bytes of the tensors it holds then: the runtime reserve, the tensors,
 * and the caching allocator's share of them held on top (plan.allocatorCacheShare, 0 when absent). Affine in
 * the tensors, so the stage-layout program can read it off the cost model as it reads the rest.
 */
export function withAllocatorCache(plan: Pick<Plan, "allocatorCacheShare">, reserveBytes: number, tensorBytes: number): number {
  return reserveBytes + (1 + (plan.allocatorCacheShare ?? 0)) * tensorBytes;
}

/**
 * What stage `stage` keeps from one micro-batch's B to its W under a split backward (ZB-H1, ZB-V), 16-bit: its
 * layers' weightGradInputBytes and, on the head stage, the output layer's (its logits' gradient x V / tp, and under
 * SP its input gathered again, x h); 0 for schedules that do not split the backward. A fully recomputed layer
 * keeps no activations of its own, so W also keeps the inputs of its linears from the forward rebuilt for B
 * (Qi et al.'s WeightGradStore holds every linear's input; the executor hands them over, model/chunk.ts): the
 * attention output x q, the MLP activation x k f and, without SP, the two norms' outputs x h (under SP the
 * gathered ones are counted already).
 */
export function stageWeightGradInputBytes(model: ModelSpec, plan: Plan, stage: number): number {
  if (!splitsBackward(plan.schedule)) return 0;
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const head = holdsHead(plan, stage)
    ? BYTES_16 * x * (model.vocabSize / plan.tp + (plan.sequenceParallel && plan.tp > 1 ? model.hiddenSize : 0))
    : 0;
  const { q } = attentionWidthsPerRank(model, plan.tp);
  const rebuilt = BYTES_16 * x * (q + (model.moe?.topK ?? 1) * (model.ffnHiddenSize / plan.tp) + (plan.sequenceParallel && plan.tp > 1 ? 0 : 2 * model.hiddenSize));
  return (plan.layersPerStage[stage] ?? 0) * weightGradInputBytes(model, plan) + (plan.recomputeLayersPerStage[stage] ?? 0) * rebuilt + head;
}

/**
 * Activation bytes of stage `stage` at its peak. Under a split backward a micro-batch's weight-gradient
 * inputs stay from its B to its W: ZB-H1's stage i holds those of min(i, m - 1) micro-batches when a
 * backward starts (with the backward's transient and, on the head stage, the micro-batch's logits) and
 * min(i + 1, m) when it ends; ZB-V's, what its order owes at each candidate peak (vActivationBranches).
 */
export function stageActivationBytes(model: ModelSpec, plan: Plan, stage: number, microBatches: number, a: LayerActivationBytes): number {
  const b = stageActivationBranches(model, plan, stage, microBatches, a);
  return Math.max(b.backwardStart, b.backwardEnd);
}

/**
 * What one micro-batch leaves on stage `stage` until its backward frees it: its layers' saved activations
 * (fully recomputed layers their inputs only) and, under ppKeepOutputs, its kept outputs.
 */
export function stagePerMicroBatchBytes(model: ModelSpec, plan: Plan, stage: number, a: LayerActivationBytes): number {
  const layers = plan.layersPerStage[stage] ?? 0;
  const full = plan.recomputeLayersPerStage[stage] ?? 0;
  return full * a.full + (layers - full) * keptBytes(a, plan) + keptOutputBytes(model, plan, stage) + embeddingNormBytes(model, plan, stage);
}

/**
 * A norm after the input embedding (ModelSpec.embeddingNorm) keeps its 16-bit input for its backward, on
 * the first stage, per micro-batch: the embedding's output, whole on every tp rank (its all-reduce
 * replicates it; under SP its reduce-scatter leaves 1/tp). Outside the transformer layers, recomputation
 * does not drop it (Megatron-DeepSpeed checkpoints the layers only).
 */
export function embeddingNormBytes(model: ModelSpec, plan: Plan, stage: number): number {
  if (model.embeddingNorm !== true || stage !== 0) return 0;
  const tokens = (plan.microBatch * plan.seqLen) / plan.cp;
  return (BYTES_16 * tokens * model.hiddenSize) / (plan.sequenceParallel ? plan.tp : 1);
}

/**
 * The two candidates for a stage's activation peak: when a backward starts (the in-flight micro-batches,
 * the backward's transient, the last stage's logits) and, under a split backward, when it ends (its
 * weight-gradient inputs added, the transient and logits gone); 0 for the latter otherwise. Each is
 * affine in the stage's layers and recomputed layers, which the stage-layout program reads off.
 */
export function stageActivationBranches(model: ModelSpec, plan: Plan, stage: number, microBatches: number, a: LayerActivationBytes): { backwardStart: number; backwardEnd: number } {
  const full = plan.recomputeLayersPerStage[stage] ?? 0;
  // Backward through a fully recomputed layer rebuilds that one layer's activations.
  const transient = full > 0 ? a.none : 0;
  const last = holdsHead(plan, stage);
  const w = stageWeightGradInputBytes(model, plan, stage);
  if (plan.schedule === "zb-v") return vActivationBranches(model, plan, stage, microBatches, a, w, transient);
  const inFlight = inFlightMicroBatches(plan, stage, microBatches) * stagePerMicroBatchBytes(model, plan, stage, a);
  if (w > 0) {
    const m = microBatches;
    return {
      backwardStart: inFlight + Math.min(stage, m - 1) * w + transient + (last ? lossBytes(model, plan) : 0),
      backwardEnd: inFlight + Math.min(stage + 1, m) * w,
    };
  }
  // GPipe runs every forward before any backward: its last stage keeps each micro-batch's logits.
  return { backwardStart: inFlight + transient + (last ? (plan.schedule === "gpipe" ? microBatches : 1) * lossBytes(model, plan) : 0), backwardEnd: 0 };
}

/**
 * ZB-V's branches, from the candidate peaks its order gives each stage (zb-v.ts VOrder.peaks): chunks held
 * (half a stage's per-micro-batch bytes each, as the simulator splits them), weight-gradient inputs owed
 * (half the stage's each), logits held, and the backward's transient. The backward-end branch is the
 * moments right after a B; the other, right after a forward or a B starts.
 */
function vActivationBranches(model: ModelSpec, plan: Plan, stage: number, microBatches: number, a: LayerActivationBytes, w: number, transient: number): { backwardStart: number; backwardEnd: number } {
  let backwardStart = 0;
  let backwardEnd = 0;
  for (const { bytes, afterBackward } of vMoments(model, plan, stage, microBatches, a, w, transient)) {
    if (afterBackward) backwardEnd = Math.max(backwardEnd, bytes);
    else backwardStart = Math.max(backwardStart, bytes);
  }
  return { backwardStart, backwardEnd };
}

/** Each candidate peak of stage `stage` under ZB-V, in the order's order: its activation bytes and its branch. */
function vMoments(model: ModelSpec, plan: Plan, stage: number, microBatches: number, a: LayerActivationBytes, w: number, transient: number): { bytes: number; afterBackward: boolean }[] {
  const v = plan.virtualStages;
  const chunk = stagePerMicroBatchBytes(model, plan, stage, a) / v;
  const loss = lossBytes(model, plan);
  return zbvOrder(plan.pp, microBatches, planVPassRatios(model, plan)).peaks[stage]!.map((peak) => ({
    bytes: peak.heldChunks * chunk + (peak.pendingChunks * w) / v + peak.logits * loss + (peak.inBackward ? transient : 0),
    afterBackward: peak.afterBackward,
  }));
}

/**
 * ZB-V: the activation bytes of each of stage `stage`'s candidate peaks (zb-v.ts VOrder.peaks, in that
 * order); each is affine in the stage's layers and recomputed layers, which the stage-layout program
 * reads off one by one (their maximum is not). Undefined under the other schedules.
 */
export function vActivationMoments(model: ModelSpec, plan: Plan, stage: number, microBatches: number, a: LayerActivationBytes): number[] | undefined {
  if (plan.schedule !== "zb-v") return undefined;
  const transient = (plan.recomputeLayersPerStage[stage] ?? 0) > 0 ? a.none : 0;
  return vMoments(model, plan, stage, microBatches, a, stageWeightGradInputBytes(model, plan, stage), transient).map((x) => x.bytes);
}

/**
 * What stage `stage` keeps of one micro-batch's outputs until that micro-batch's backward, under
 * plan.ppKeepOutputs: DeepSpeed's pipeline engine holds each forward's output in buffers['outputs'] for
 * its BackwardPass and drops it only after (deepspeed/runtime/pipe/engine.py _exec_backward_pass, "Free up
 * the memory from the output of forward()"), while Megatron-LM frees an output's data once it is sent
 * (deallocate_output_tensor, megatron/core/pipeline_parallel/schedules.py). One 16-bit tensor of the
 * hidden state (split over tp under SP) per model chunk that hands its output to another stage: every
 * chunk but the head stage's last, which ends in the loss. Under ppScatterGather the engine keeps only the
 * rank's slice (engine.py _exec_forward_pass: `first_output.data = torch.zeros(1)`, the PartitionedTensor
 * kept in its place) and re-gathers the whole just before the backward.
 */
export function keptOutputBytes(model: ModelSpec, plan: Plan, stage: number): number {
  if (plan.ppKeepOutputs !== true || plan.pp === 1) return 0;
  const chunks = plan.virtualStages - (holdsHead(plan, stage) ? 1 : 0);
  const r = plan.sequenceParallel || plan.ppScatterGather === true ? plan.tp : 1;
  return (chunks * BYTES_16 * plan.microBatch * plan.seqLen * model.hiddenSize) / (plan.cp * r);
}

/**
 * Bytes per logit the loss holds when its backward runs. Megatron-LM's vocabulary-parallel cross-entropy
 * (cross_entropy.py): the 16-bit logits from the output layer and the fp32 copy it keeps for its backward,
 * whose softmax gradient it writes in place, 2 + 4. A fused cross-entropy (plan.fusedCrossEntropy,
 * flash-attn's CrossEntropyLoss): the 16-bit logits it saved and the new 16-bit gradient its backward
 * writes, 2 + 2.
 */
export function lossBytesPerLogit(plan: Pick<Plan, "fusedCrossEntropy">): number {
  return plan.fusedCrossEntropy === true ? 2 + 2 : 2 + 4;
}

/** The last stage's output for one micro-batch: the final norm's input and output (16-bit) and the logits (lossBytesPerLogit). */
export function lossBytes(model: ModelSpec, plan: Plan): number {
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const r = plan.sequenceParallel ? plan.tp : 1;
  return (2 * 2 * x * model.hiddenSize) / r + (lossBytesPerLogit(plan) * x * model.vocabSize) / plan.tp;
}

/**
 * Tensors outside model states and saved activations: ZeRO-3's gathered weights of the current and the
 * prefetched layer, and the sequence-parallel all-gather buffer of one layer input. (The runtime's reserve,
 * outside the tensors, is runtimeReserveBytes.)
 */
export function otherTensorBytes(model: ModelSpec, plan: Plan, perLayer: RankParams): number {
  let bytes = 0;
  if (plan.zero >= 3) bytes += 2 * PARAM_BYTES * (perLayer.dense + perLayer.expert);
  if (plan.sequenceParallel) bytes += (2 * plan.microBatch * plan.seqLen * model.hiddenSize) / plan.cp;
  return bytes;
}
