import { endShortLayout, type PlanInput } from "../spec/plan.js";
import type { ModelSpec, Precision, Recompute } from "../spec/types.js";
import { recordMeasurement, type Measurement } from "./conventions.js";
import { recordModel } from "./model.js";
import { attentionKernelOf, profileOf, reasonFor, type AttentionKernelName, type SourceProfile } from "./profiles.js";
import type { MeasurementRecord } from "./records.js";

/** One record made reproducible: the model, the built-in cluster, the plan, what was measured. */
export interface ValidationCase {
  readonly id: string;
  readonly source: string;
  readonly model: ModelSpec;
  /** A built-in cluster name (models/hardware/clusters). */
  readonly cluster: string;
  readonly gpus: number;
  readonly gpusPerNode: number | undefined;
  readonly plan: PlanInput;
  /** Undefined for a record that only reports running out of memory. */
  readonly measurement: Measurement | undefined;
  /** False when the source reports an out-of-memory failure. */
  readonly ran: boolean;
  /** Every default filled in for a knob the record leaves out. */
  readonly assumptions: readonly string[];
  /** Peak memory per GPU as published (GiB, or BLOOM's nvidia-smi "GB" as 10^9 bytes), when given. */
  readonly publishedMemoryBytes: number | undefined;
  /** The framework's fused attention kernel, when the source's profile names one. */
  readonly attentionKernel?: AttentionKernelName;
  /**
   * Why the published outcome (ran, or out of memory) is contradicted by stronger evidence, where the
   * source's profile says so: the record is kept and reported, and a memory miss on it is listed as
   * disputed rather than counted as a violation.
   */
  readonly disputed?: string;
}

export interface Skipped {
  readonly id: string;
  readonly source: string;
  readonly reason: string;
}

export type CaseResult = { readonly case: ValidationCase } | { readonly skipped: Skipped };

/** The published GPU as a built-in cluster (DGX topology; the measurement file names the GPU as published). */
export function clusterFor(gpu: string | null, source: string, system: string | null = null): { cluster?: string; skip?: string; note?: string } {
  if (gpu === null) return { skip: "GPU not stated" };
  // BLOOM's cluster: the same GPU as a DGX A100, a quarter of its inter-node bandwidth (4 Omni-Path links per node).
  if (system?.includes("Jean Zay") === true && gpu.includes("A100") && gpu.includes("80GB")) return { cluster: "jean-zay-a100-80gb" };
  // The IBM FSDP blog's clusters: the same GPUs as a DGX, a quarter of its inter-node bandwidth (400 and 800 Gb/s per node).
  if (source === "pytorch-fsdp-ibm-2024" && gpu.includes("A100") && gpu.includes("80GB")) return { cluster: "ibm-a100-80gb-400g" };
  if (source === "pytorch-fsdp-ibm-2024" && gpu.includes("H100")) return { cluster: "ibm-h100-800g" };
  if (gpu.includes("V100")) return { skip: "V100 (DGX-2): no DGX-2 cluster is built in" };
  if (gpu.includes("H200")) return { cluster: "dgx-h200" };
  if (gpu.includes("B200")) return { cluster: "dgx-b200" };
  if (gpu.includes("96GB")) return { skip: "H100 96GB HBM2e (500 W) is not a built-in GPU" };
  if (gpu.includes("H100")) return { cluster: "dgx-h100" };
  if (gpu.includes("A100-class")) return { skip: "GPU SKU not stated" };
  if (gpu.includes("A100") && gpu.includes("40GB")) return { cluster: "dgx-a100-40gb" };
  if (gpu.includes("A100") && gpu.includes("80GB")) return { cluster: "dgx-a100-80gb" };
  // Megatron-LM's September 2020 tables: a DGX A100 then had 40 GB GPUs (the 80 GB part came in November 2020).
  if (gpu.includes("DGX-A100") && source === "megatron-gpt2-2020-readme") return { cluster: "dgx-a100-40gb", note: "DGX A100 of 2020: 40 GB GPUs" };
  return { skip: `GPU '${gpu}' has no built-in match` };
}

function precisionOf(text: string | null, profile: SourceProfile, assumptions: string[]): Precision {
  if (text !== null) {
    if (/fp8|float8/i.test(text)) return "fp8";
    if (/bf16/i.test(text)) return "bf16";
    if (/fp16|half/i.test(text)) return "fp16";
  }
  assumptions.push(`precision ${profile.precision} (not stated; ${profile.framework})`);
  return profile.precision;
}

/** Recomputation as the plan knobs: a mode, and the share of layers fully recomputed where that is how it was done. */
function recomputeOf(r: MeasurementRecord, profile: SourceProfile, assumptions: string[]): { mode?: Recompute; fullShare?: number; skip?: string } {
  const text = r.parallel.recompute;
  const selective = (): { mode: Recompute; fullShare?: number } => {
    if (profile.selectiveShare === undefined) return { mode: "selective" };
    assumptions.push(`selective (op): ${100 * profile.selectiveShare}% of layers counted as fully recomputed (${profile.framework} policy)`);
    return { mode: "none", fullShare: profile.selectiveShare };
  };
  if (text === null) {
    assumptions.push(`recompute ${profile.recompute} (not stated; ${profile.framework})`);
    return profile.recompute === "selective" ? selective() : { mode: profile.recompute };
  }
  if (/^full/i.test(text)) return { mode: "full" };
  if (/^none/i.test(text)) return { mode: "none" };
  if (/selective \(layer\)/i.test(text)) {
    // torchtitan's selective layer checkpointing wraps every 2nd block (selective_ac_option "2").
    assumptions.push("selective (layer): every 2nd layer fully recomputed (torchtitan default option)");
    return { mode: "none", fullShare: 0.5 };
  }
  if (/every n-th block/i.test(text)) {
    const { mfu_pct: mfu, hfu_pct: hfu } = r.measured;
    if (mfu === null || hfu === null) return { skip: "recompute share (every n-th block) not stated" };
    // HFU/MFU = (3 + f)/3 for a share f of layers recomputed (one extra forward each).
    const share = Math.min(1, Math.max(0, 3 * (hfu / mfu - 1)));
    assumptions.push(`every n-th block: ${(100 * share).toFixed(0)}% of layers recomputed (from HFU/MFU)`);
    return { mode: "none", fullShare: share };
  }
  if (/^selective/i.test(text)) return selective();
  return { skip: `recompute '${text}' not understood` };
}

function zeroOf(r: MeasurementRecord, profile: SourceProfile, assumptions: string[]): number {
  if (r.parallel.zero_stage !== null) return r.parallel.zero_stage;
  const fsdp = r.parallel.fsdp;
  if (fsdp !== null) {
    if (/not resharded/i.test(fsdp)) return 2; // weights kept gathered after the forward: ZeRO-2's memory
    if (/FSDP=0/.test(fsdp)) return profile.zero;
    if (/FSDP/i.test(fsdp)) return 3;
  }
  if (profile.zero !== 0) assumptions.push(`ZeRO ${profile.zero} (${profile.framework})`);
  return profile.zero;
}

/**
 * Layers per stage when they do not split evenly: the embedding and the output layer count as one layer
 * each (Megatron-DeepSpeed's `type:transformer|embedding` partition for BLOOM; the Llama 3 paper, section
 * 3.3.2, removes one layer from the first and the last of 16 stages for 405B). The layers + 2 units are
 * split as DeepSpeed's partition_uniform does, and the first and last stages give one unit to the
 * embedding and the output layer. Interleaved (v > 1), the units must fill the pp * v chunks evenly, as
 * Megatron-Core requires; undefined when the split is even or cannot be made.
 */
export function unevenLayers(layers: number, pp: number, v: number): number[] | undefined {
  if (pp < 2 || layers % (pp * v) === 0) return undefined;
  if (v > 1) return (layers + 2) % (pp * v) === 0 ? endShortLayout(layers, { pp, virtualStages: v, schedule: "interleaved" }) : undefined;
  // DeepSpeed's partition_uniform: the first (units mod pp) stages take one unit more.
  const units = layers + 2;
  const base = Math.floor(units / pp);
  const extra = units % pp;
  const out = Array.from({ length: pp }, (_, i) => base + (i < extra ? 1 : 0) - (i === 0 || i === pp - 1 ? 1 : 0));
  return out.every((n) => n >= 1) ? out : undefined;
}

function skip(r: MeasurementRecord, reason: string): CaseResult {
  return { skipped: { id: r.id, source: r.source, reason } };
}

export function recordCase(r: MeasurementRecord, builtins: readonly ModelSpec[]): CaseResult {
  const profile = profileOf(r.source);
  if (profile === undefined) return skip(r, `no profile for source '${r.source}'`);
  const why = profile.skip?.(r);
  if (why !== undefined) return skip(r, why);
  const x = r.measured;
  const throughput = [x.iteration_time_s, x.tokens_per_sec_per_gpu, x.tokens_per_sec_total, x.tflops_per_gpu].some((v) => v !== null);
  if (x.oom !== true && !throughput) return skip(r, "no throughput measurement (memory or per-layer figures only)");
  const hw = clusterFor(r.hardware.gpu, r.source, r.hardware.system);
  if (hw.cluster === undefined) return skip(r, hw.skip ?? "no cluster");
  const gpus = r.hardware.num_gpus;
  if (gpus === null) return skip(r, "GPU count not stated");
  const p = r.parallel;
  if (p.tp === null || p.pp === null) return skip(r, "tensor/pipeline degrees not stated");
  const built = recordModel(r, profile, builtins);
  if (built.model === undefined) return skip(r, built.skip ?? "model shape incomplete");
  const model = built.model;
  const assumptions = [...built.assumptions, ...(hw.note === undefined ? [] : [hw.note])];
  const cp = p.cp ?? 1;
  const dp = p.dp ?? gpus / (p.tp * p.pp * cp);
  if (dp * p.tp * p.pp * cp !== gpus) return skip(r, `dp(${dp}) * tp(${p.tp}) * pp(${p.pp}) * cp(${cp}) != GPUs(${gpus})`);
  const seqLen = model.seqLen;
  const globalBatch = p.global_batch_size ?? (p.global_batch_tokens === null ? null : p.global_batch_tokens / seqLen);
  if (globalBatch === null || !Number.isInteger(globalBatch)) return skip(r, "global batch not stated");
  let microBatch = p.micro_batch_size ?? profile.microBatch?.(r);
  if (microBatch === undefined) {
    microBatch = 1;
    assumptions.push("micro-batch 1 (not stated)");
  }
  const rc = recomputeOf(r, profile, assumptions);
  if (rc.mode === undefined) return skip(r, rc.skip ?? "recompute");
  const v = p.vpp ?? virtualStagesOf(r, profile, model.layers, assumptions);
  const layersPerStage = unevenLayers(model.layers, p.pp, v);
  if (layersPerStage !== undefined) assumptions.push(`layers per stage ${layersPerStage[0]}..${layersPerStage[1]} (embedding and output count as layers)`);
  const stages = layersPerStage ?? new Array<number>(p.pp).fill(model.layers / p.pp);
  const sp = p.tp > 1 && (p.sequence_parallel ?? profile.sequenceParallel);
  const plan: PlanInput = {
    tp: p.tp, pp: p.pp, dp, cp, ep: 1, virtualStages: v, schedule: v > 1 ? "interleaved" : "1f1b",
    microBatch, globalBatch, seqLen, sequenceParallel: sp, zero: zeroOf(r, profile, assumptions), recompute: rc.mode,
    precision: precisionOf(p.precision, profile, assumptions), flashAttention: profile.flashAttention,
    tpCommOverlap: p.tp > 1 && profile.tpCommOverlap === true,
    ...(p.tp > 1 && profile.tpSyncBackward === true ? { tpSyncBackward: true } : {}),
    ...(profile.ppScatterGather === true ? { ppScatterGather: true } : {}),
    ...shardGroupOf(r, profile, dp * cp, assumptions),
    ...(layersPerStage === undefined ? {} : { layersPerStage }),
    ...(rc.fullShare === undefined ? {} : { recomputeLayersPerStage: stages.map((n) => Math.round(n * rc.fullShare!)) }),
  };
  if (plan.ppScatterGather === true && p.pp > 1 && p.tp > 1 && !sp) {
    assumptions.push(`pipeline transfers as 1/tp slices, all-gathered over tp by the receiver (${profile.deepspeedPipeline === true ? "DeepSpeed's pipe_partitioned default" : "Megatron-LM's scatter/gather default"})`);
  }
  for (const [key, applies] of Object.entries(REASONED_SWITCHES) as [ReasonedSwitch, (plan: PlanInput) => boolean][]) {
    const why = reasonFor(profile[key], r);
    if (why === undefined || !applies(plan)) continue;
    assumptions.push(why);
    plan[key] = true;
  }
  if (profile.deepspeedPipeline === true && p.pp > 1) {
    assumptions.push("DeepSpeed pipeline engine: blocking sends and receives, data-parallel reduction after the schedule, stage outputs kept until their backward");
    plan.ppBlockingSends = true;
    plan.ppKeepOutputs = true;
    if ((plan.zero ?? 0) <= 1) plan.dpCommExposed = true;
  }
  const bf16Optimizer = profile.deepspeedBf16Optimizer === true && plan.precision === "bf16" && (plan.zero ?? 0) <= 1;
  if (bf16Optimizer) {
    assumptions.push("DeepSpeed BF16_Optimizer: 16-bit gradients kept beside the fp32 accumulators");
    plan.keep16BitGrads = true;
  }
  const accumulation = profile.deepspeedAccumulation === true && (plan.zero ?? 0) <= 1 ? deepspeedAccumulation(bf16Optimizer, globalBatch / (dp * microBatch)) : undefined;
  if (accumulation !== undefined) {
    assumptions.push(accumulation.why);
    plan.gradientAccumulationBytesPerParam = accumulation.bytesPerParam;
  }
  const optimizer = profile.optimizer?.(r);
  if (optimizer !== undefined) {
    assumptions.push(optimizer.why);
    plan.fp32Gradients = optimizer.fp32Gradients;
    plan.optimizerStateBytes = optimizer.optimizerStateBytes;
  }
  const runtime = profile.runtime?.({ tp: p.tp, pp: p.pp, dp });
  if (runtime !== undefined) {
    assumptions.push(runtime.why);
    plan.runtimeReserveBytes = runtime.runtimeReserveBytes;
    plan.allocatorCacheShare = runtime.allocatorCacheShare;
  }
  if (profile.optimizerStep !== undefined) {
    assumptions.push(profile.optimizerStep.why);
    plan.optimizerStepBytesPerParam = profile.optimizerStep.bytesPerParam;
  }
  const ran = r.measured.oom !== true;
  const disputed = profile.disputed?.(r);
  const kernel = plan.flashAttention === true ? attentionKernelOf(profile, r) : undefined;
  if (kernel !== undefined) assumptions.push(`attention kernel ${kernel} (${profile.framework})`);
  const measurement = recordMeasurement(r, profile, model, globalBatch, seqLen, gpus);
  if (ran && measurement === undefined) return skip(r, "TFLOP/s only, and the source's FLOP counting is not known");
  return {
    case: {
      id: r.id, source: r.source, model, cluster: hw.cluster, gpus, gpusPerNode: r.hardware.gpus_per_node ?? undefined, plan, measurement, ran, assumptions,
      publishedMemoryBytes: x.memory_per_gpu_gib !== null ? x.memory_per_gpu_gib * 2 ** 30 : x.memory_per_gpu_gb !== null ? x.memory_per_gpu_gb * 1e9 : undefined,
      ...(kernel === undefined ? {} : { attentionKernel: kernel }),
      ...(disputed === undefined ? {} : { disputed }),
    },
  };
}

/**
 * What DeepSpeed's engine (ZeRO 0/1) moves per parameter and micro-batch to accumulate weight gradients,
 * averaged over the step's `microBatches`. BF16_Optimizer's update_hp_grads, after every micro-batch's
 * backward, casts each bf16 gradient to fp32 and adds it into its fp32 accumulator (`hp_grad.data.add_(
 * lp.grad.data.to(hp_grad.dtype))`, deepspeed/runtime/bf16_optimizer.py): the cast reads 2 and writes 4,
 * the add reads 4 + 4 and writes 4, 18 bytes. With fp16 the ZeRO-1 optimizer registers no gradient hooks
 * (stage_1_and_2.py: only for partitioned gradients or overlap_comm) and zero_grad sets the gradients to
 * None, so PyTorch's autograd keeps the first micro-batch's gradient and adds each later one into it in place
 * (AccumulateGrad: read 2 + 2, write 2): 6 bytes on all but the first micro-batch, none with one.
 */
export function deepspeedAccumulation(bf16Optimizer: boolean, microBatches: number): { bytesPerParam: number; why: string } | undefined {
  if (bf16Optimizer) {
    return { bytesPerParam: 18, why: "gradient accumulation: BF16_Optimizer casts each micro-batch's gradients to fp32 and adds them in, 18 bytes per parameter" };
  }
  const m = microBatches;
  if (m <= 1) return undefined; // one micro-batch: nothing to add into
  return {
    bytesPerParam: (6 * (m - 1)) / m,
    why: "gradient accumulation: autograd adds each micro-batch's fp16 gradients into the ones held, 6 bytes per parameter after the first micro-batch",
  };
}

/**
 * The plan switches a profile gives as the reason to print, each set where it applies to the record's
 * plan: a recomputation that stops early needs layers recomputed in full, the fp8 input storage fp8,
 * FSDP's fp32-shard storage ZeRO 3; the fused loss and blocking launches wherever the profile gives a reason.
 */
const REASONED_SWITCHES = {
  recomputeEarlyStop: (plan) => plan.recompute === "full" || plan.recomputeLayersPerStage !== undefined,
  fusedCrossEntropy: () => true,
  fp8Keep16BitInputs: (plan) => plan.precision === "fp8",
  fp32ShardOnly: (plan) => plan.zero === 3,
  launchBlocking: () => true,
} as const satisfies Partial<Record<keyof SourceProfile & keyof PlanInput, (plan: PlanInput) => boolean>>;
type ReasonedSwitch = keyof typeof REASONED_SWITCHES;

/** The profile's virtual stages per GPU where the record states no count (an assumption, printed). */
function virtualStagesOf(r: MeasurementRecord, profile: SourceProfile, layers: number, assumptions: string[]): number {
  const pp = r.parallel.pp ?? 1;
  const chosen = pp > 1 ? profile.virtualStages?.(r, layers) : undefined;
  if (chosen === undefined) return 1;
  assumptions.push(`interleaved schedule, ${chosen.v} virtual stages per GPU (${chosen.why})`);
  return chosen.v;
}

/** The profile's hybrid shard group for this record, where it splits the dp * cp ranks (an assumption, printed). */
function shardGroupOf(r: MeasurementRecord, profile: SourceProfile, ranks: number, assumptions: string[]): { shardGroup?: number } {
  const group = profile.shardGroup?.(r);
  if (group === undefined || group >= ranks || ranks % group !== 0) return {};
  assumptions.push(`hybrid sharding over ${group} GPUs (${profile.framework})`);
  return { shardGroup: group };
}
