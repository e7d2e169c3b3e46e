import { InputError } from "./errors.js";
import { divisorsOf } from "../math/divisors.js";
import {
  RECOMPUTES, SCHEDULES, TRAINING_PRECISIONS,
  type ClusterShape, type GpuSpec, type ModelSpec, type Plan, type Precision, type Recompute, type Schedule, type VPassRatios, type ZeroStage,
} from "./types.js";
import { grouped } from "../math/digits.js";
import { endsOnStage, headStage, isVShape, type PipelineShape } from "./virtual-stages.js";

/** Knobs as a user gives them: anything left out gets a default. Field names follow the contract's plan object. */
export interface PlanInput {
  dp?: number | undefined;
  tp?: number | undefined;
  pp?: number | undefined;
  cp?: number | undefined;
  ep?: number | undefined;
  sequenceParallel?: boolean | undefined;
  virtualStages?: number | undefined;
  microBatch?: number | undefined;
  globalBatch?: number | undefined;
  seqLen?: number | undefined;
  schedule?: Schedule | undefined;
  zero?: number | undefined;
  recompute?: Recompute | undefined;
  precision?: Precision | undefined;
  layersPerStage?: readonly number[] | undefined;
  recomputeLayersPerStage?: readonly number[] | undefined;
  parameterServers?: number | undefined;
  asynchronous?: boolean | undefined;
  staleness?: number | undefined;
  flashAttention?: boolean | undefined;
  fp32Gradients?: boolean | undefined;
  tpCommOverlap?: boolean | undefined;
  dpCommExposed?: boolean | undefined;
  dpCommBlocking?: boolean | undefined;
  ppBlockingSends?: boolean | undefined;
  ppScatterGather?: boolean | undefined;
  tpSyncBackward?: boolean | undefined;
  launchBlocking?: boolean | undefined;
  recomputeEarlyStop?: boolean | undefined;
  ppKeepOutputs?: boolean | undefined;
  keep16BitGrads?: boolean | undefined;
  fusedCrossEntropy?: boolean | undefined;
  fp8Keep16BitInputs?: boolean | undefined;
  fp32ShardOnly?: boolean | undefined;
  optimizerStateBytes?: number | undefined;
  optimizerStepBytesPerParam?: number | undefined;
  gradientAccumulationBytesPerParam?: number | undefined;
  runtimeReserveBytes?: number | undefined;
  allocatorCacheShare?: number | undefined;
  vPassRatios?: VPassRatios | undefined;
  shardGroup?: number | undefined;
}

/**
 * Tokens per global batch when neither the user nor the model file gives a batch:
 * 4M tokens, the batch of Llama 2's pre-training (Touvron et al. 2023, section 2.2).
 */
export const DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024;

/** Optimizer state per parameter for mixed-precision Adam: fp32 master weight, momentum and variance (ZeRO, section 3.1, "K = 12"). */
export const OPTIMIZER_STATE_BYTES = 12;

/** fp32 bytes per parameter of the master copy (part of OPTIMIZER_STATE_BYTES), which fp32ShardOnly makes the stored parameter. */
export const MASTER_PARAM_BYTES = 4;

/**
 * Largest global batch a plan may have, in sequences (2^24, about 16.8 million): three orders of
 * magnitude above the largest published LLM batches (Llama 3 405B: 16M tokens, 2,048 sequences of 8,192),
 * so that a mistyped figure is an error instead of an analysis that never ends.
 */
export const MAX_GLOBAL_BATCH = 2 ** 24;

function bad(field: string, value: unknown, valid: string, reason?: string): never {
  throw new InputError({ code: "out-of-range", field, value, valid, ...(reason === undefined ? {} : { reason }) });
}

function notDivisible(field: string, value: unknown, valid: string, reason: string): never {
  throw new InputError({ code: "not-divisible", field, value, valid, reason });
}

function positiveInt(field: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) bad(field, v, "an integer >= 1");
  return v;
}

function listDivisors(n: number): string {
  const ds = divisorsOf(n);
  return ds.length > 12 ? `${ds.slice(0, 12).join(", ")}, ... (divisors of ${n})` : ds.join(", ");
}

/** The precision a plan trains in unless told: bf16, or fp16 on a GPU without bf16 tensor cores (V100). */
export function defaultPrecision(gpu: GpuSpec): Precision {
  return gpu.peakFlopsPerSecond.bf16 !== undefined ? "bf16" : "fp16";
}

/** Resolves and validates a plan for a model on a cluster shape. Throws InputError naming the field. */
export function resolvePlan(model: ModelSpec, shape: ClusterShape, input: PlanInput): Plan {
  const gpus = shape.gpus;
  const tp = positiveInt("tp", input.tp, 1);
  const pp = positiveInt("pp", input.pp, 1);
  const cp = positiveInt("cp", input.cp, 1);
  const ep = positiveInt("ep", input.ep, 1);
  const model3 = tp * pp * cp;
  if (gpus % model3 !== 0) {
    notDivisible("gpus", gpus, `a multiple of tp * pp * cp = ${model3}`, `tp(${tp}) * pp(${pp}) * cp(${cp}) must divide gpus(${gpus})`);
  }
  const dp = positiveInt("dp", input.dp, gpus / model3);
  if (dp * model3 !== gpus) {
    notDivisible("dp", dp, `${gpus / model3}`, `dp(${dp}) * tp(${tp}) * pp(${pp}) * cp(${cp}) = ${dp * model3} != gpus(${gpus})`);
  }

  if (model.attentionHeads % tp !== 0) {
    notDivisible("tp", tp, listDivisors(model.attentionHeads), `attention heads (${model.attentionHeads}) must split evenly over tp`);
  }
  if (model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) {
    notDivisible("tp", tp, `a divisor or multiple of the ${model.kvHeads} KV heads`, "KV heads are split or replicated across tp");
  }
  if (model.ffnHiddenSize % tp !== 0) {
    notDivisible("tp", tp, listDivisors(model.ffnHiddenSize), `the MLP hidden size (${model.ffnHiddenSize}) must split evenly over tp`);
  }

  const seqLen = positiveInt("seqLen", input.seqLen, model.seqLen);
  // A learned position table has one row per position it was built for: a longer sequence has no rows to
  // read (GPT-2's wpe, GPT-3), and growing it is a different model (its parameters and memory change).
  if (model.positionEmbedding === "learned" && seqLen > model.seqLen) {
    bad("seqLen", seqLen, `at most ${model.seqLen}`, `${model.name} learns its position embeddings for ${model.seqLen} positions; a longer sequence needs a model file with a larger seqLen`);
  }
  if (seqLen % cp !== 0) notDivisible("cp", cp, listDivisors(seqLen), `the sequence (${seqLen} tokens) is split over cp`);

  if (ep > 1 && model.moe === undefined) bad("ep", ep, "1", `${model.name} has no experts`);
  if (model.moe !== undefined && model.moe.experts % ep !== 0) {
    notDivisible("ep", ep, listDivisors(model.moe.experts), `${model.moe.experts} experts are split over ep`);
  }
  if ((dp * cp) % ep !== 0) notDivisible("ep", ep, listDivisors(dp * cp), `ep is carved out of dp * cp = ${dp * cp}`);

  const virtualStages = positiveInt("virtualStages", input.virtualStages, input.schedule === "zb-v" ? ZB_V_CHUNKS : 1);
  const schedule = input.schedule ?? (pp > 1 && virtualStages > 1 ? "interleaved" : "1f1b");
  if (!SCHEDULES.includes(schedule)) bad("schedule", schedule, SCHEDULES.join(", "));
  checkSchedule(schedule, pp, virtualStages);

  const layersPerStage = resolveLayers(model, { pp, virtualStages, schedule }, input.layersPerStage);

  const microBatch = positiveInt("microBatch", input.microBatch, 1);
  const perStep = dp * microBatch;
  // A default the user did not give is rounded to what the schedule takes (interleaving: whole rounds of pp).
  const globalBatch = input.globalBatch ?? roundUp(defaultGlobalBatch(model, seqLen), batchMultiple(schedule, dp, microBatch, pp));
  positiveInt("globalBatch", globalBatch, 1);
  if (globalBatch > MAX_GLOBAL_BATCH) bad("globalBatch", globalBatch, `an integer from 1 to ${grouped(MAX_GLOBAL_BATCH)} (sequences)`);
  if (globalBatch % perStep !== 0) {
    notDivisible("globalBatch", globalBatch, `a multiple of dp * microBatch = ${perStep}`, `dp(${dp}) * microBatch(${microBatch}) must divide it`);
  }
  const microBatches = globalBatch / perStep;
  if (schedule === "interleaved" && microBatches % pp !== 0) {
    notDivisible("globalBatch", globalBatch, `a multiple of dp * microBatch * pp = ${perStep * pp}`,
      `the interleaved schedule needs micro-batches (${microBatches}) to be a multiple of pp (${pp})`);
  }

  const zeroRaw = input.zero ?? 0;
  if (![0, 1, 2, 3].includes(zeroRaw)) bad("zero", zeroRaw, "0, 1, 2, 3");
  const zero = zeroRaw as ZeroStage;

  const recompute = input.recompute ?? "none";
  if (!RECOMPUTES.includes(recompute)) bad("recompute", recompute, RECOMPUTES.join(", "));
  const recomputeLayersPerStage = resolveRecompute(recompute, layersPerStage, input.recomputeLayersPerStage);

  const precision = input.precision ?? defaultPrecision(shape.spec.gpu);
  if (!TRAINING_PRECISIONS.includes(precision)) bad("precision", precision, TRAINING_PRECISIONS.join(", "));
  const gpu = shape.spec.gpu;
  if (gpu.peakFlopsPerSecond[precision] === undefined) {
    const valid = TRAINING_PRECISIONS.filter((p) => gpu.peakFlopsPerSecond[p] !== undefined);
    bad("precision", precision, valid.join(", "), `${gpu.name} has no ${precision} tensor cores`);
  }

  const parameterServers = input.parameterServers ?? 0;
  const asynchronous = input.asynchronous ?? false;
  const staleness = input.staleness ?? (asynchronous ? 1 : 0);
  const dpCommExposed = input.dpCommExposed ?? false;
  if (dpCommExposed && zero > 1) bad("zero", zero, "0 or 1 with dpCommExposed", "an exposed once-per-step reduction is DeepSpeed's pipeline engine, which runs ZeRO 0 and 1 only");
  const dpCommBlocking = dp * cp > 1 && (input.dpCommBlocking ?? false);
  if (dpCommBlocking && dpCommExposed) bad("dpCommBlocking", true, "false with dpCommExposed", "an exposed once-per-step reduction and collectives in line with every pass are two different engines");
  checkParameterServers({ parameterServers, tp, pp, cp, ep, zero, asynchronous, staleness, dpCommExposed, dpCommBlocking });
  if (dpCommBlocking && zero < 2) bad("zero", zero, "2 or 3 with dpCommBlocking", "in-line collectives describe ZeRO-2/3's per-micro-batch traffic; ZeRO 0/1 in line after the schedule is dpCommExposed");
  const ppBlockingSends = pp > 1 && (input.ppBlockingSends ?? false);
  const ppKeepOutputs = pp > 1 && (input.ppKeepOutputs ?? false);
  // Megatron-LM accumulates and reduces gradients in fp32 under bf16 (arguments.py: bf16 implies
  // accumulate_allreduce_grads_in_fp32); the ZeRO paper's fp16 recipe keeps 2-byte gradients.
  const fp32Gradients = input.fp32Gradients ?? precision !== "fp16";
  const keep16BitGrads = input.keep16BitGrads ?? false;
  if (keep16BitGrads && !fp32Gradients) bad("keep16BitGrads", true, "false without fp32 gradients", "with 16-bit gradients there is no fp32 accumulator to keep them beside");
  if (keep16BitGrads && zero > 1) bad("zero", zero, "0 or 1 with keep16BitGrads", "it describes DeepSpeed's BF16_Optimizer, which runs ZeRO 0 and 1 only");
  if (input.fp32ShardOnly === true && zero !== 3) bad("zero", zero, "3 with fp32ShardOnly", "it describes FSDP's full sharding, where each layer's 16-bit weights exist only while gathered");
  if (input.fp8Keep16BitInputs === true && precision !== "fp8") bad("fp8Keep16BitInputs", true, "false (or left out) unless the precision is fp8", "it says how fp8 linears keep their inputs");
  const optimizerStateBytes = input.optimizerStateBytes;
  if (optimizerStateBytes !== undefined && (!Number.isInteger(optimizerStateBytes) || optimizerStateBytes < 1 || optimizerStateBytes > 16)) {
    bad("optimizerStateBytes", optimizerStateBytes, "an integer from 1 to 16 (12: fp32 master weight, momentum and variance)");
  }
  if (input.fp32ShardOnly === true && optimizerStateBytes !== undefined && optimizerStateBytes < MASTER_PARAM_BYTES) {
    bad("optimizerStateBytes", optimizerStateBytes, `at least ${MASTER_PARAM_BYTES} with fp32ShardOnly`, "the fp32 shard it keeps is the optimizer's master copy, part of the optimizer state");
  }
  const optimizerStepBytesPerParam = input.optimizerStepBytesPerParam;
  if (optimizerStepBytesPerParam !== undefined && !(Number.isFinite(optimizerStepBytesPerParam) && optimizerStepBytesPerParam > 0 && optimizerStepBytesPerParam <= 1000)) {
    bad("optimizerStepBytesPerParam", optimizerStepBytesPerParam, "a number of bytes above 0 and at most 1000 (fused Adam moves about 30 per parameter)");
  }
  const gradientAccumulationBytesPerParam = input.gradientAccumulationBytesPerParam;
  if (gradientAccumulationBytesPerParam !== undefined && !(Number.isFinite(gradientAccumulationBytesPerParam) && gradientAccumulationBytesPerParam > 0 && gradientAccumulationBytesPerParam <= 100)) {
    bad("gradientAccumulationBytesPerParam", gradientAccumulationBytesPerParam,
      "a number of bytes above 0 and at most 100 (autograd adding 16-bit gradients moves 6 per parameter, DeepSpeed's BF16_Optimizer 18), or left out when the accumulation is fused");
  }
  const runtimeReserveBytes = input.runtimeReserveBytes;
  if (runtimeReserveBytes !== undefined && !(Number.isSafeInteger(runtimeReserveBytes) && runtimeReserveBytes >= 0 && runtimeReserveBytes < shape.spec.gpu.memoryBytes)) {
    bad("runtimeReserveBytes", runtimeReserveBytes, `a whole number of bytes from 0 to below the GPU's ${shape.spec.gpu.memoryBytes}`);
  }
  const allocatorCacheShare = input.allocatorCacheShare;
  if (allocatorCacheShare !== undefined && !(Number.isFinite(allocatorCacheShare) && allocatorCacheShare >= 0 && allocatorCacheShare <= 1)) {
    bad("allocatorCacheShare", allocatorCacheShare, "a share from 0 to 1 (PyTorch's default allocator held 0.028-0.14 more in our measurements)");
  }
  const vPassRatios = checkVPassRatios(input.vPassRatios, schedule);
  checkTensorKnobs(tp, input);
  const tpSyncBackward = tp > 1 && (input.tpSyncBackward ?? false);
  const sequenceParallel = tp > 1 && (input.sequenceParallel ?? true);
  // Off unless asked for (Megatron-LM before Megatron-Core, DeepSpeed's pipeline engine); moot under SP.
  const ppScatterGather = pp > 1 && tp > 1 && !sequenceParallel && input.ppScatterGather === true;
  const shardGroup = resolveShardGroup(input.shardGroup, dp * cp, zero, ep, parameterServers);
  if (tpSyncBackward && input.tpCommOverlap === true) {
    bad("tpSyncBackward", true, "false with tpCommOverlap", "overlapping every tensor-parallel collective is the opposite of a synchronous backward");
  }

  return {
    dp, tp, pp, cp, ep,
    sequenceParallel,
    virtualStages,
    microBatch,
    globalBatch,
    seqLen,
    schedule,
    zero,
    recompute,
    precision,
    layersPerStage,
    recomputeLayersPerStage,
    parameterServers,
    asynchronous,
    staleness,
    flashAttention: input.flashAttention ?? true,
    fp32Gradients,
    // Off unless asked for: Megatron-LM's --tp-comm-overlap is opt-in (arguments.py default False).
    tpCommOverlap: tp > 1 && (input.tpCommOverlap ?? false),
    // Both off unless asked for: they describe DeepSpeed's pipeline engine, not the default stack.
    ...(dpCommExposed ? { dpCommExposed } : {}),
    // Off unless asked for: it describes this project's executor.
    ...(dpCommBlocking ? { dpCommBlocking } : {}),
    ...(ppBlockingSends ? { ppBlockingSends } : {}),
    ...(ppScatterGather ? { ppScatterGather } : {}),
    // Off unless asked for: it describes Megatron-DeepSpeed and Megatron-LM before 2022.
    ...(tpSyncBackward ? { tpSyncBackward } : {}),
    // Off unless asked for: it describes a debugging setting that BLOOM's training kept on.
    ...(input.launchBlocking === true ? { launchBlocking: true } : {}),
    // Off unless asked for: it describes PyTorch's non-reentrant checkpoint, not Megatron-LM's.
    ...(input.recomputeEarlyStop === true ? { recomputeEarlyStop: true } : {}),
    // Both off unless asked for: they describe DeepSpeed's pipeline engine and BF16_Optimizer.
    ...(ppKeepOutputs ? { ppKeepOutputs } : {}),
    ...(keep16BitGrads ? { keep16BitGrads } : {}),
    // Off unless asked for: it describes flash-attn's fused loss (llm-foundry), not Megatron-LM's.
    ...(input.fusedCrossEntropy === true ? { fusedCrossEntropy: true } : {}),
    // Off unless asked for: fp8 linears keep their input's fp8 cast (Transformer Engine), not torchao's 16-bit input.
    ...(input.fp8Keep16BitInputs === true ? { fp8Keep16BitInputs: true } : {}),
    // Off unless asked for: ZeRO-3 as DeepSpeed runs it keeps a 16-bit shard beside the fp32 master.
    ...(input.fp32ShardOnly === true ? { fp32ShardOnly: true } : {}),
    // Absent unless it differs from mixed-precision Adam's 12 bytes.
    ...(optimizerStateBytes !== undefined && optimizerStateBytes !== OPTIMIZER_STATE_BYTES ? { optimizerStateBytes } : {}),
    // Absent unless given: fused Adam's traffic (optimizerBytesPerParam).
    ...(optimizerStepBytesPerParam !== undefined ? { optimizerStepBytesPerParam } : {}),
    ...(gradientAccumulationBytesPerParam !== undefined ? { gradientAccumulationBytesPerParam } : {}),
    // Absent unless given: the GPU file's reserve, and no allocator cache.
    ...(runtimeReserveBytes !== undefined ? { runtimeReserveBytes } : {}),
    ...(allocatorCacheShare !== undefined && allocatorCacheShare > 0 ? { allocatorCacheShare } : {}),
    // Present only when it shards over fewer ranks than dp * cp (hybrid sharding); absent: full sharding.
    ...(shardGroup !== undefined ? { shardGroup } : {}),
    // Absent unless given (ZB-V only): the order then follows the layer's FLOPs.
    ...(vPassRatios !== undefined ? { vPassRatios } : {}),
  };
}

/** ZB-V's pass lengths, where given: ZB-V only, each a multiple of 1/4 from 1/4 to 8 (VPassRatios). */
function checkVPassRatios(r: VPassRatios | undefined, schedule: Schedule): VPassRatios | undefined {
  if (r === undefined) return undefined;
  const text = `${r.backward},${r.weight}`;
  if (schedule !== "zb-v") bad("vPassRatios", text, "left out unless the schedule is zb-v", "only ZB-V's order is found from the pass lengths");
  for (const key of ["backward", "weight"] as const) {
    const x = r[key];
    if (!(Number.isFinite(x) && x >= 0.25 && x <= 8 && Number.isInteger(4 * x))) {
      bad("vPassRatios", text, "B,W each a multiple of 0.25 from 0.25 to 8 (the pass's length in chunk forwards)", `${key === "backward" ? "B" : "W"} = ${x}`);
    }
  }
  return { backward: r.backward, weight: r.weight };
}

/**
 * The schedule against the pipeline stages and virtual stages, each checked where it is known (resolvePlan
 * knows both; the search, only what is pinned). With one stage there is no pipeline: its micro-batches run
 * one after the other, each forward then its backward (gradient accumulation, what 1F1B reduces to);
 * GPipe's all-forwards-first order, ZB-H1's deferred weight gradients and naive model parallelism would
 * only change memory, not what runs.
 */
export function checkSchedule(schedule: Schedule, pp: number | undefined, virtualStages: number | undefined): void {
  if (schedule === "zb-v") {
    if (pp !== undefined && pp < 2) bad("pp", pp, "2 or more with the zb-v schedule", "its V runs down the pipeline's stages and back");
    if (virtualStages !== undefined && virtualStages !== ZB_V_CHUNKS) bad("virtualStages", virtualStages, `${ZB_V_CHUNKS} with the zb-v schedule`, "ZB-V runs exactly two chunks on every stage");
    return;
  }
  if (schedule === "interleaved") {
    if (pp !== undefined && pp < 2) bad("pp", pp, "2 or more with the interleaved schedule", "it interleaves the virtual stages of a pipeline");
    if (virtualStages !== undefined && virtualStages < 2) bad("virtualStages", virtualStages, "2 or more with the interleaved schedule", "the interleaved schedule needs virtual stages");
    return;
  }
  if (pp === 1 && schedule !== "1f1b") {
    bad("schedule", schedule, "1f1b with pp 1, or pp >= 2", "a pipeline schedule needs a pipeline: one stage runs its micro-batches as gradient accumulation");
  }
  if (virtualStages !== undefined && virtualStages !== 1) bad("virtualStages", virtualStages, "1", `virtual stages need --schedule interleaved (got ${schedule})`);
}

/**
 * Tensor-parallel knobs asked for without tensor parallelism would be dropped without a word: an error
 * instead (resolvePlan; the search, for a pinned tp).
 */
export function checkTensorKnobs(tp: number, input: PlanInput): void {
  if (tp !== 1) return;
  const what = { sequenceParallel: "sequence parallel shards activations over the tp group", tpCommOverlap: "it overlaps the tp collectives", tpSyncBackward: "it times the tp collectives" } as const;
  for (const key of ["sequenceParallel", "tpCommOverlap", "tpSyncBackward"] as const) {
    if (input[key] === true) bad(key, true, "false (or left out) with tp 1", `${what[key]}, and tp is 1`);
  }
}

/**
 * The framework knobs that are switches (doc/cost-model.md), in the order the framework line names them:
 * read from their flags (cli/context.ts planInputFrom), printed back (cli/format.ts frameworkFlags) and
 * pinned by validate's planner comparison (validate/planner.ts) from this one list, so a new knob cannot be
 * read without being shown and kept.
 */
export const FRAMEWORK_SWITCHES = [
  "tpCommOverlap", "tpSyncBackward", "ppBlockingSends", "ppScatterGather", "dpCommExposed", "dpCommBlocking", "launchBlocking",
  "recomputeEarlyStop", "ppKeepOutputs", "keep16BitGrads", "fusedCrossEntropy", "fp8Keep16BitInputs", "fp32ShardOnly",
] as const satisfies readonly (keyof PlanInput)[];

/** The framework knobs that take a number (how many bytes the optimizer keeps and moves, and the gradient accumulation moves), shown and pinned like the switches. */
export const FRAMEWORK_VALUES = ["optimizerStateBytes", "optimizerStepBytesPerParam", "gradientAccumulationBytesPerParam", "runtimeReserveBytes", "allocatorCacheShare"] as const satisfies readonly (keyof PlanInput)[];

/** The knobs a parameter-server plan depends on (resolvePlan's values, or the search's pins with its defaults). */
export interface ParameterServerKnobs {
  readonly parameterServers: number;
  readonly tp: number;
  readonly pp: number;
  readonly cp: number;
  readonly ep: number;
  readonly zero: number;
  readonly asynchronous: boolean;
  readonly staleness: number;
  readonly dpCommExposed: boolean;
  readonly dpCommBlocking: boolean;
}

/**
 * Parameter servers (design brief: TensorFlow's ParameterServerStrategy) serve pure data-parallel workers
 * and hold the optimizer; asynchronous updates need them, and only those are stale. One rule set for a
 * resolved plan and for the search's pins, so both refuse the same input with the same words.
 */
export function checkParameterServers(k: ParameterServerKnobs): void {
  const { parameterServers, asynchronous, staleness } = k;
  if (!Number.isInteger(parameterServers) || parameterServers < 0) bad("parameterServers", parameterServers, "an integer >= 0");
  if (parameterServers > 0 && (k.tp > 1 || k.pp > 1 || k.cp > 1 || k.ep > 1)) {
    bad("parameterServers", parameterServers, "0 when tp, pp, cp or ep > 1", "parameter servers serve pure data parallel workers");
  }
  if (parameterServers > 0 && k.zero !== 0) bad("zero", k.zero, "0 with parameter servers", "the servers hold the optimizer");
  if (asynchronous && parameterServers === 0) bad("asynchronous", true, "false without --ps", "asynchronous updates need parameter servers");
  if (!Number.isInteger(staleness) || staleness < 0) bad("staleness", staleness, "an integer >= 0");
  if (asynchronous && staleness === 0) bad("staleness", staleness, "an integer >= 1 with --async", "a bound of 0 is synchronous: leave --async out");
  if (!asynchronous && staleness !== 0) bad("staleness", staleness, "0 without --async", "synchronous updates are never stale");
  if (k.dpCommExposed && parameterServers > 0) bad("dpCommExposed", true, "false with parameter servers", "the servers carry the data-parallel traffic");
  if (k.dpCommBlocking && parameterServers > 0) bad("dpCommBlocking", true, "false with parameter servers", "the servers carry the data-parallel traffic");
}

/**
 * Hybrid sharding (PyTorch FSDP HYBRID_SHARD / FSDP2 HSDP; DeepSpeed ZeRO++ hpZ and MiCS): ZeRO shards
 * the model states over groups of `shardGroup` of the dp * cp ranks that share weights and replicates
 * them across the groups. Undefined when it is the whole dp * cp group (ordinary ZeRO).
 */
function resolveShardGroup(raw: number | undefined, ranks: number, zero: ZeroStage, ep: number, parameterServers: number): number | undefined {
  if (raw === undefined || raw === ranks) return undefined;
  if (!Number.isInteger(raw) || raw < 1 || ranks % raw !== 0) {
    notDivisible("shardGroup", raw, `a divisor of dp * cp = ${ranks}`, "the shard groups must tile the data-parallel ranks");
  }
  if (raw === 1) bad("shardGroup", raw, `a divisor of dp * cp = ${ranks} from 2 up`, "a group of one shards nothing: that is ZeRO 0");
  if (zero === 0) bad("shardGroup", raw, `${ranks} (the whole dp * cp group) with ZeRO 0`, "ZeRO 0 shards nothing");
  if (ep > 1) bad("shardGroup", raw, `${ranks} with expert parallelism`, "hybrid sharding of expert weights is not modelled");
  if (parameterServers > 0) bad("shardGroup", raw, `${ranks} with parameter servers`, "the servers hold the optimizer");
  return raw;
}

/** Sequences per step when the user gives none: the model file's batch, else DEFAULT_BATCH_TOKENS of them. */
export function defaultGlobalBatch(model: ModelSpec, seqLen: number): number {
  return model.globalBatch ?? Math.max(1, Math.round(DEFAULT_BATCH_TOKENS / seqLen));
}

/** What a global batch must be a multiple of: dp x micro-batch, and x pp under the interleaved schedule. */
function batchMultiple(schedule: Schedule, dp: number, microBatch: number, pp: number): number {
  return dp * microBatch * (schedule === "interleaved" ? pp : 1);
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/** Chunks per stage under ZB-V (Qi et al. 2023: "each device is assigned exactly 2 chunks"). */
export const ZB_V_CHUNKS = 2;

/**
 * Whether a stage's `layers` fill its v chunks evenly. A stage holding the embedding or the output layer
 * may count each as one layer (Megatron-Core's account_for_embedding_in_pipeline_split and
 * account_for_loss_in_pipeline_split; Llama 3's "one Transformer layer less" on those stages, Dubey et al.
 * 2024, section 3.3.2), so v = 1 takes any count and v > 1 takes a multiple of v or one less per model end
 * the stage holds (`ends`: spec/virtual-stages.ts endsOnStage; both on ZB-V's first stage).
 */
export function fillsChunks(layers: number, v: number, ends: number): boolean {
  if (layers < 1) return false;
  if (layers % v === 0) return true;
  if (v < 2) return false;
  return (ends >= 1 && (layers + 1) % v === 0) || (ends >= 2 && (layers + 2) % v === 0);
}

/** Under virtual stages, the even layout with the stages holding the model's ends one layer short per end, when the layers allow it. */
export function endShortLayout(layers: number, shape: PipelineShape): number[] | undefined {
  const { pp, virtualStages: v } = shape;
  if (v < 2 || pp < 2) return undefined;
  const short = (pp * v - (layers % (pp * v))) % (pp * v);
  if (short < 1 || short > 2) return undefined;
  const per = (layers + short) / pp;
  // Shortened stages, the embedding's first: the first stage, then the one holding the output layer.
  const cuts = [0, headStage(shape)].slice(0, short);
  const out = Array.from({ length: pp }, (_, i) => per - cuts.filter((c) => c === i).length);
  return out.every((n) => n >= 1) ? out : undefined;
}

function resolveLayers(model: ModelSpec, shape: PipelineShape, given: readonly number[] | undefined): number[] {
  const { pp, virtualStages: v } = shape;
  if (given !== undefined) {
    const sum = given.reduce((a, b) => a + b, 0);
    if (given.length !== pp || sum !== model.layers || given.some((n, i) => !Number.isInteger(n) || !fillsChunks(n, v, endsOnStage(shape, i)))) {
      const ends = v <= 1 ? "" : isVShape(shape.schedule)
        ? " (the first may hold one or two layers less: its embedding and output take layers' places)"
        : " (the first and last may hold one layer less: their embedding or output takes a layer's place)";
      bad("layersPerStage", given, `${pp} multiples of virtualStages (${v}), each >= ${v}${ends}, adding up to ${model.layers} layers`);
    }
    return [...given];
  }
  const ends = endShortLayout(model.layers, shape);
  if (pp * v > model.layers && ends === undefined) {
    // With virtual stages, their count is what overflows the layers when pp alone fits them (pp 2, vpp 32, 32 layers).
    if (isVShape(shape.schedule)) bad("pp", pp, `at most ${Math.floor((model.layers + 1) / v)} with zb-v`, `${model.layers} layers cannot fill pp(${pp}) * ${v} chunks (the first stage may hold one less)`);
    if (v > 1 && pp <= model.layers) bad("virtualStages", v, `at most ${Math.floor(model.layers / pp)}`, `${model.layers} layers cannot fill pp(${pp}) * virtualStages(${v}) = ${pp * v} chunks`);
    bad("pp", pp, `at most ${Math.floor(model.layers / v)}`, `${model.layers} layers cannot fill ${pp * v} stages`);
  }
  if (model.layers % (pp * v) !== 0) {
    const where = isVShape(shape.schedule) ? "the first stage short, for the embedding and the output" : "the first and last stages one short, for the embedding and the output";
    const hint = ends === undefined ? "" : ` (e.g. ${ends.join(",")}: ${where})`;
    const reason = `${model.layers} layers do not split evenly into pp(${pp}) * virtualStages(${v}) chunks; give layersPerStage (--layers-per-stage) for an uneven split${hint}`;
    // With virtual stages the count of them is what to change (pp was chosen for the GPUs); without, pp.
    // ZB-V's two chunks are the schedule's own.
    if (v > 1 && !isVShape(shape.schedule)) {
      const even = divisorsOf(model.layers).filter((w) => w > 1 && model.layers % (pp * w) === 0);
      // 1 (no interleaving) is valid wherever pp divides the layers; only without that is there none.
      const valid = even.length > 0 ? `one of ${even.join(", ")} (pp * virtualStages dividing ${model.layers})`
        : model.layers % pp === 0 ? `1 (no interleaving: no virtualStages of 2 or more splits ${model.layers} layers evenly over pp(${pp})), or give layersPerStage`
          : `none splits ${model.layers} layers evenly over pp(${pp}); give layersPerStage`;
      notDivisible("virtualStages", v, valid, reason);
    }
    notDivisible("pp", pp, `a divisor of ${model.layers}`, reason);
  }
  return new Array<number>(pp).fill(model.layers / pp);
}

function resolveRecompute(recompute: Recompute, layers: readonly number[], given: readonly number[] | undefined): number[] {
  if (given !== undefined) {
    if (given.length !== layers.length || given.some((n, i) => !Number.isInteger(n) || n < 0 || n > (layers[i] ?? 0))) {
      bad("recomputeLayersPerStage", given, `${layers.length} integers, each between 0 and that stage's layers (${layers.join(", ")})`);
    }
    // "full" recomputes every layer; a partial list under it would be reported as full while the
    // unlisted layers kept all their activations.
    if (recompute === "full" && given.some((n, i) => n !== layers[i])) {
      bad("recomputeLayersPerStage", given, `every stage's layers (${layers.join(", ")}) under recompute full, or recompute none or selective for the unlisted layers`, "recompute full recomputes every layer");
    }
    return [...given];
  }
  return layers.map((n) => (recompute === "full" ? n : 0));
}

/** Micro-batches per data-parallel replica per step (gradient-accumulation steps). */
export function microBatchCount(plan: Plan): number {
  return plan.globalBatch / (plan.dp * plan.microBatch);
}
