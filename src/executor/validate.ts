import { InputError } from "../spec/errors.js";
import { divisorsOf } from "../math/divisors.js";
import { totalParams } from "../planner/cost/params.js";
import type { ModelSpec, Plan, Schedule } from "../spec/types.js";
import { isVShape } from "../spec/virtual-stages.js";
import { alltoallExperts, headKeepsTiedCopy, routingGroupTokens } from "./model/layout.js";

/**
 * What the TensorFlow.js executor runs, beyond what resolvePlan already checks. Each rejection names the
 * field, the value and what is valid (exit code 2 at the command line).
 */
export const MAX_EXECUTOR_RANKS = 16;

/**
 * Bytes per parameter the one-rank reference run holds, which every execution runs (float32 throughout,
 * src/executor/parallel/state.ts): the weights as tensors 4, the gradient 4, the master copy 4, Adam's
 * two moments 8, and the new weights' tensor made during the update 4.
 */
export const REFERENCE_BYTES_PER_PARAMETER = 24;

function unsupported(field: string, value: unknown, valid: string, reason: string): never {
  throw new InputError({ code: "unsupported", field, value, valid, reason });
}

/**
 * `machineBytes`: this machine's memory (os.totalmem at the caller). The reference run and the split hold
 * about the same model states between them, so each may take half of it; activations are small beside them
 * at the sizes that run here.
 */
export function validateForExecutor(model: ModelSpec, plan: Plan, machineBytes?: number): void {
  if (machineBytes !== undefined) {
    const params = totalParams(model);
    const most = Math.floor(machineBytes / 2 / REFERENCE_BYTES_PER_PARAMETER);
    if (params > most) {
      unsupported("model", `${model.name} (${(params / 1e6).toFixed(0)} M parameters)`, `at most ${(most / 1e6).toFixed(0)} M parameters on this machine (${(machineBytes / 2 ** 30).toFixed(0)} GiB), e.g. --model tiny-gpt`,
        `the executor trains in float32 on the CPU; the one-rank reference alone needs ${REFERENCE_BYTES_PER_PARAMETER} bytes per parameter`);
    }
  }
  const ranks = plan.dp * plan.tp * plan.pp * plan.cp + plan.parameterServers;
  if (ranks > MAX_EXECUTOR_RANKS) unsupported("gpus", ranks, `at most ${MAX_EXECUTOR_RANKS} ranks (workers plus servers)`, "each rank is a worker thread on this machine");
  if (model.moe !== undefined || plan.ep > 1) checkExecutorExperts(model, plan);
  if (plan.optimizerStepBytesPerParam !== undefined) unsupported("optimizerStepBytesPerParam", plan.optimizerStepBytesPerParam, "absent (fused Adam's traffic)", "the executor measures its own optimizer step");
  if (plan.gradientAccumulationBytesPerParam !== undefined) {
    unsupported("gradientAccumulationBytesPerParam", plan.gradientAccumulationBytesPerParam, "absent", "the executor's gradient accumulation is its own, timed by its calibrated profile");
  }
  if (plan.runtimeReserveBytes !== undefined) unsupported("runtimeReserveBytes", plan.runtimeReserveBytes, "absent", "the executor's memory is what TensorFlow.js holds, counted tensor by tensor, with no GPU runtime around it");
  if (plan.allocatorCacheShare !== undefined) unsupported("allocatorCacheShare", plan.allocatorCacheShare, "absent", "the executor's memory is what TensorFlow.js holds, counted tensor by tensor, with no caching allocator");
  if (plan.optimizerStateBytes !== undefined) unsupported("optimizerStateBytes", plan.optimizerStateBytes, "12 (fp32 Adam states)", "the executor's Adam keeps fp32 master weights, momentum and variance");
  if (plan.shardGroup !== undefined) unsupported("shardGroup", plan.shardGroup, `${plan.dp * plan.cp} (all data-parallel ranks)`, "the executor shards over the whole data-parallel group; hybrid sharding is not implemented");
  if (model.kvHeads % plan.tp !== 0) unsupported("tp", plan.tp, `a divisor of the ${model.kvHeads} KV heads`, "the executor splits K/V heads, it does not replicate them");
  if (model.vocabSize % plan.tp !== 0) unsupported("tp", plan.tp, `a divisor of the vocabulary (${model.vocabSize})`, "the embedding and output layer split the vocabulary over tp");
  if (model.positionEmbedding === "rope" && model.headDim % 2 !== 0) unsupported("model.headDim", model.headDim, "an even number", "rotary embedding rotates pairs");
  if (plan.seqLen > model.seqLen && model.positionEmbedding === "learned") {
    unsupported("seqLen", plan.seqLen, `at most ${model.seqLen}`, "learned position embeddings have one row per position of the model's context");
  }
  const local = plan.seqLen / plan.cp;
  if (plan.sequenceParallel && local % plan.tp !== 0) {
    unsupported("tp", plan.tp, `a divisor of the ${local} positions per context-parallel rank`, "sequence parallel splits positions over tp");
  }
  if (plan.flashAttention) {
    unsupported("flashAttention", true, "false (leave out --flash)", "the executor has no fused attention kernel: it stores the score matrix, and predicts with flash attention off");
  }
  if (plan.ppScatterGather === true) unsupported("ppScatterGather", true, "false (leave out --pp-scatter-gather)", "the executor's pipeline sends whole activations");
  // One stage: the embedding's gathered weights are held through each pass for the tied output layer
  // (parallel/state.ts heldRoot). ZB-V's first stage runs them in different passes.
  if (model.tiedEmbeddings && !headKeepsTiedCopy(model, plan) && plan.zero === 3 && plan.pp > 1) {
    unsupported("zero", plan.zero, "0, 1 or 2 for a model with tied embeddings whose output layer is on the embedding's stage of a pipeline (ZB-V)",
      "under ZeRO 3 the output layer, in another pass than the embedding's, would gather the embedding's weights again, two all-gathers per micro-batch more than the cost model counts");
  }
  if (headKeepsTiedCopy(model, plan) && plan.zero >= 2) {
    unsupported("zero", plan.zero, "0 or 1 for a model with tied embeddings on more than one stage",
      "the last stage's copy of the word embedding is summed with the first stage's once per step, which needs the whole gradient that ZeRO 2 and 3 reduce-scatter after each micro-batch");
  }
  if (headKeepsTiedCopy(model, plan) && plan.parameterServers > 0) {
    unsupported("parameterServers", plan.parameterServers, "0 for a model with tied embeddings on more than one stage", "the servers would keep the word embedding's two copies apart");
  }
  checkExecutorLayers(model.layers, plan);
}

/**
 * What the executor's mixture of experts runs (model/moe.ts): every expert on every rank, or its experts
 * split over ep ranks (any ep resolvePlan takes: a divisor of dp x cp, no parameter servers); its experts
 * split over tp (with sequence parallel; with ep as well, Megatron-Core's alltoall dispatcher); and a capacity (seqLen / cp x topK / experts tokens of
 * each routing group per expert, model/routing.ts) that is a whole number.
 */
function checkExecutorExperts(model: ModelSpec, plan: Plan): void {
  const moe = model.moe;
  if (moe === undefined) unsupported("ep", plan.ep, "1 for a dense model", "expert parallelism splits a mixture of experts");
  if (plan.tp > 1 && !plan.sequenceParallel) {
    unsupported("sequenceParallel", false, "true for a mixture-of-experts model with tp > 1 (as Megatron-LM requires)", "each tp rank's share of the router's gradient is a partial sum, added up by sequence parallel's once-per-step sum of the replicated weights' gradients");
  }
  const step = moe.experts / gcd(moe.experts, moe.topK);
  if (((plan.seqLen / plan.cp) * moe.topK) % moe.experts !== 0) {
    const field = plan.cp > 1 ? "cp" : "seqLen";
    const valid = plan.cp > 1
      ? `a divisor of seqLen(${plan.seqLen}) that leaves a multiple of ${step} positions per rank (so that seqLen / cp x topK(${moe.topK}) / experts(${moe.experts}) is whole)`
      : `a multiple of ${step} (so that seqLen x topK(${moe.topK}) / experts(${moe.experts}) is whole)`;
    unsupported(field, plan.cp > 1 ? plan.cp : plan.seqLen, valid, "each expert takes a whole number of tokens from each routing group, a context-parallel rank's positions of a sequence (a capacity factor of 1)");
  }
  // With tp and ep together each tp rank routes its own positions: a group of seqLen / cp / tp.
  if (alltoallExperts(model, plan) && (routingGroupTokens(model, plan) * moe.topK) % moe.experts !== 0) {
    unsupported("tp", plan.tp, `a divisor of the ${plan.seqLen / plan.cp} positions per context-parallel rank that leaves a multiple of ${step} per tp rank`,
      "with ep each tp rank routes its own positions as a group, from which each expert takes a whole number of tokens (a capacity factor of 1)");
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The pipeline shape checkExecutorLayers reads: a resolved plan's, or the flags' before resolvePlan (no layout given: undefined). */
export interface ExecutorLayout {
  readonly pp: number;
  readonly virtualStages: number;
  readonly schedule: Schedule;
  readonly layersPerStage?: readonly number[] | undefined;
}

/**
 * The layer layouts the executor runs under the interleaved schedule: its chunks are equal and of whole
 * layers (model/layout.ts chunkLayers gives every chunk of stage s layersPerStage[s] / v layers and numbers
 * the global chunks as if all were that size), so every stage holds layers / pp layers, a multiple of v.
 * The cost model also takes the first and last stages one layer short (spec/plan.ts fillsChunks, for the
 * embedding and the output); the executor does not run that layout. Without interleaving (v = 1) any
 * layout runs. `given`: the layers per stage asked for, absent where resolvePlan is still to choose them
 * (execute checks the flags before resolvePlan, whose own hint is the end-short layout).
 */
export function checkExecutorLayers(layers: number, plan: ExecutorLayout): void {
  const { pp, virtualStages: v, layersPerStage: given } = plan;
  if (v < 2 || pp < 2) return;
  if (isVShape(plan.schedule) && layers % (pp * v) !== 0) {
    const ok = divisorsOf(layers).filter((d) => d >= 2 && layers % (2 * d) === 0);
    unsupported("pp", pp, ok.length === 0 ? `none: ${layers} layers do not split into 2 x pp equal chunks` : `${ok.join(", ")} (2 x pp dividing ${layers} layers)`,
      `the executor runs ZB-V's two chunks per stage equal and of whole layers, and ${layers} layers do not split into 2 x pp(${pp}) = ${2 * pp} of them; the first stage two layers short, which the cost model takes, is not executed`);
  }
  if (layers % (pp * v) !== 0) {
    const ok = divisorsOf(layers).filter((w) => layers % (pp * w) === 0);
    const valid = ok.length === 0 ? `1 (no interleaving), with layersPerStage since pp(${pp}) does not divide ${layers} layers`
      : `${ok.join(", ")} (pp * virtualStages dividing ${layers} layers; 1 is no interleaving)`;
    unsupported("virtualStages", v, valid, `the executor interleaves equal chunks of whole layers, and ${layers} layers do not split into pp(${pp}) * virtualStages(${v}) = ${pp * v} of them; stages one layer short at the ends, which the cost model takes, are not executed`);
  }
  const even = layers / pp;
  if (given !== undefined && (given.length !== pp || given.some((n) => n !== even))) {
    unsupported("layersPerStage", given, `${new Array<number>(pp).fill(even).join(",")} (every stage the same multiple of virtualStages(${v}))`, `the executor's ${plan.schedule} chunks are equal and of whole layers`);
  }
}

/** The one-rank plan whose losses and weights every split must reproduce. */
export function referencePlan(model: ModelSpec, plan: Plan): Plan {
  return {
    ...plan,
    dp: 1, tp: 1, pp: 1, cp: 1, ep: 1,
    sequenceParallel: false, virtualStages: 1, schedule: "1f1b", zero: 0,
    layersPerStage: [model.layers], recomputeLayersPerStage: [0],
    parameterServers: 0, asynchronous: false, staleness: 0,
  };
}
