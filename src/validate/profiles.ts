import type { PositionEmbedding, Precision, Recompute } from "../spec/types.js";
import type { MeasurementRecord } from "./records.js";

/**
 * What each source's framework did where a record leaves a knob unstated (null). Every default here is
 * applied as a stated assumption, printed with the record by `meshplan validate`. The FLOP conventions are
 * models/measurements/README.md, "How each source counts FLOPs".
 */
export type FlopConvention = "megatron-hardware" | "megatron-model" | "palm";

/**
 * Why a framework switch holds, printed as the record's assumption: for every record of the source, or
 * per record (undefined: the switch is off for that record).
 */
export type Reason = string | ((r: MeasurementRecord) => string | undefined);

export function reasonFor(reason: Reason | undefined, r: MeasurementRecord): string | undefined {
  return typeof reason === "function" ? reason(r) : reason;
}

export interface SourceProfile {
  /** The framework, in words, for the report. */
  readonly framework: string;
  readonly flashAttention: boolean;
  readonly dropout: boolean;
  /** ZeRO stage when the record names neither a stage nor FSDP. */
  readonly zero: number;
  readonly recompute: Recompute;
  readonly precision: Precision;
  readonly sequenceParallel: boolean;
  /**
   * Share of the forward redone under the framework's op-level "selective" checkpointing, when it is not
   * Korthikanti et al.'s (attention core only); modelled as that share of layers fully recomputed.
   */
  readonly selectiveShare?: number;
  /** Tensor-parallel communication overlapped with GEMMs (--tp-comm-overlap) when tp > 1. */
  readonly tpCommOverlap?: boolean;
  /**
   * DeepSpeed's pipeline engine runs the pipeline (Megatron-DeepSpeed with pp > 1): blocking stage-to-stage
   * sends and the data-parallel reduction after the schedule (deepspeed/runtime/pipe/schedule.py).
   */
  readonly deepspeedPipeline?: boolean;
  /**
   * DeepSpeed's BF16_Optimizer runs the bf16 records (ZeRO 0/1): their 16-bit gradients stay beside the fp32
   * accumulators (plan knob keep16BitGrads, deepspeed/runtime/bf16_optimizer.py).
   */
  readonly deepspeedBf16Optimizer?: boolean;
  /**
   * DeepSpeed's engine with ZeRO 0/1 accumulates the weight gradients across micro-batches as passes of their
   * own (plan knob gradientAccumulationBytesPerParam; validate/cases.ts deepspeedAccumulation gives the bytes).
   */
  readonly deepspeedAccumulation?: boolean;
  /**
   * How the source's models take positions, where not as their family does (GPT: a learned table; Llama,
   * Nemotron: rotary).
   */
  readonly positionEmbedding?: PositionEmbedding;
  /** A norm right after the input embedding (ModelSpec.embeddingNorm). */
  readonly embeddingNorm?: boolean;
  /** Tensor-parallel backward collectives all synchronous (plan knob tpSyncBackward), when tp > 1. */
  readonly tpSyncBackward?: boolean;
  /** Stage outputs sent as 1/tp slices and all-gathered by the receiver (plan knob ppScatterGather), when tp > 1 without SP. */
  readonly ppScatterGather?: boolean;
  /**
   * Blocking kernel launches (plan knob launchBlocking, CUDA_LAUNCH_BLOCKING=1) for this record, with the
   * reason printed as its assumption (undefined: asynchronous).
   */
  readonly launchBlocking?: Reason;
  /**
   * Layers recomputed in full through PyTorch's non-reentrant checkpoint, which stops once every saved
   * tensor is back (plan knob recomputeEarlyStop), with the reason printed as the assumption of every
   * record that recomputes (undefined: the whole forward runs again).
   */
  readonly recomputeEarlyStop?: Reason;
  /** The loss is flash-attn's fused cross-entropy (plan knob fusedCrossEntropy), with the reason printed as every record's assumption. */
  readonly fusedCrossEntropy?: Reason;
  /** Under fp8, the linears keep their 16-bit inputs (plan knob fp8Keep16BitInputs, torchao), with the reason printed as the fp8 records' assumption. */
  readonly fp8Keep16BitInputs?: Reason;
  /** Under ZeRO 3, the weights are stored only as their fp32 shard (plan knob fp32ShardOnly, PyTorch FSDP), with the reason printed. */
  readonly fp32ShardOnly?: Reason;
  /**
   * The fused attention kernel the framework ran (the GPU priors describe their generation's best), for
   * every record or per record (undefined: the GPU's prior kernel).
   */
  readonly attentionKernel?: AttentionKernelName | ((r: MeasurementRecord) => AttentionKernelName | undefined);
  /** How the source counts FLOPs in `tflops_per_gpu` (undefined: never compared as TFLOP/s). */
  readonly tflops?: FlopConvention;
  readonly vocab?: number;
  readonly heads?: number;
  readonly seqLen?: number;
  /** Records of this source that cannot be reproduced, and why (undefined: keep). */
  readonly skip?: (r: MeasurementRecord) => string | undefined;
  /** Hybrid sharding: the shard group the framework used for this record (undefined: the whole dp * cp group). */
  readonly shardGroup?: (r: MeasurementRecord) => number | undefined;
  /**
   * Virtual stages per GPU when the record states no count but the source names an interleaved schedule or
   * its run scripts set one (undefined: 1F1B), with the reason printed as the record's assumption.
   */
  readonly virtualStages?: (r: MeasurementRecord, layers: number) => { v: number; why: string } | undefined;
  /**
   * The optimizer's gradient and state precision for this record where the framework's recipe sets them
   * (undefined: the plan's defaults, fp32 gradients under bf16/fp8 and 12 bytes of fp32 Adam state), with
   * the reason printed as the record's assumption.
   */
  readonly optimizer?: (r: MeasurementRecord) => { fp32Gradients: boolean; optimizerStateBytes: number; why: string } | undefined;
  /** HBM bytes per parameter of the shard the framework's optimizer step moves, where it is not a fused Adam (plan.optimizerStepBytesPerParam), and why. */
  readonly optimizerStep?: { readonly bytesPerParam: number; readonly why: string };
  /** Micro-batch when the record gives none (default 1). */
  readonly microBatch?: (r: MeasurementRecord) => number | undefined;
  /**
   * The stack's memory outside the tensors and its allocator's cache, where they are not the GPU file's
   * (plan knobs runtimeReserveBytes and allocatorCacheShare), for a plan of these degrees, with the reason
   * printed as the record's assumption.
   */
  readonly runtime?: (degrees: { tp: number; pp: number; dp: number }) => { runtimeReserveBytes: number; allocatorCacheShare: number; why: string };
  /**
   * A published outcome that stronger evidence contradicts, and that evidence (undefined: none). Such a
   * record stays in the report; a memory miss on it is listed as disputed, with the evidence, not counted.
   */
  readonly disputed?: (r: MeasurementRecord) => string | undefined;
}

/**
 * Device bytes outside the tensors in a training step, measured: device used minus the allocator's reserved
 * bytes, 1.78 GiB in every one of our emulated BLOOM stages (models/hardware/measured/h100-sxm-memory.json,
 * CUDA 13 with its kernels loaded lazily). A lower bound for 2022's stack: before CUDA 11.7 every kernel was
 * loaded into the context, "which took >1000MB" against about 300 MB with lazy loading (ptrblck,
 * pytorch/pytorch issue #107667).
 */
const STEP_RUNTIME_BYTES = 1_911_000_000;
/**
 * NCCL's buffers for one communicator: 544 MB for a group of 2 and 688 MB for a larger one, measured on 4
 * A100s over NVLink (NVIDIA/nccl issue #964); our one-rank group took 589 MB on the H100 (the same file's
 * context section). The smallest figure is taken.
 */
const NCCL_COMMUNICATOR_BYTES = 544_000_000;
/**
 * PyTorch's default caching allocator (expandable segments came with PyTorch 2.1; tr11 ran 1.11): reserved
 * minus allocated over our eight emulated BLOOM stages that ran, 2.8-14.0% of the allocated bytes, median
 * 5.9% (h100-sxm-memory.json, default allocator).
 */
const DEFAULT_ALLOCATOR_CACHE_SHARE = 0.059;

/**
 * The NCCL communicators a first-stage rank of Megatron-DeepSpeed under DeepSpeed's pipeline engine runs a
 * collective on, each created on first use: the world's (Megatron's barriers); Megatron's tensor-parallel
 * group (the layers' all-reduces); DeepSpeed's PipelineParallelGrid groups (deepspeed/runtime/pipe/
 * topology.py): the slice group (PartitionedTensor's all-gather of a stage's input over tp), the
 * data-parallel group (the gradient reduction), the model-parallel group (pp x tp: the gradient norm and
 * the overflow check) and the pipeline group (the loss broadcast from the last stage); PipelineModule's
 * tied-weights group of the first and last stages; and one point-to-point communicator per neighbouring
 * stage (ProcessGroupNCCL keys send/recv by the pair of ranks). A group of one rank runs no collective here.
 */
export function deepspeedPipelineCommunicators(d: { tp: number; pp: number; dp: number }): number {
  const pipelined = d.pp > 1 ? 1 : 0;
  return 1 + (d.tp > 1 ? 1 : 0) + (d.tp > 1 && d.pp > 1 ? 1 : 0) + (d.dp > 1 ? 1 : 0) + (d.tp * d.pp > 1 ? 1 : 0) + 3 * pipelined;
}

/** BLOOM's stack (PyTorch 1.11, CUDA 11, Megatron-DeepSpeed on DeepSpeed's pipeline engine): its runtime reserve and allocator cache. */
function bloomRuntime(d: { tp: number; pp: number; dp: number }): { runtimeReserveBytes: number; allocatorCacheShare: number; why: string } {
  const communicators = deepspeedPipelineCommunicators(d);
  const runtimeReserveBytes = STEP_RUNTIME_BYTES + communicators * NCCL_COMMUNICATOR_BYTES;
  const gb = (bytes: number) => (bytes / 1e9).toFixed(2);
  return {
    runtimeReserveBytes,
    allocatorCacheShare: DEFAULT_ALLOCATOR_CACHE_SHARE,
    why: `outside the tensors ${gb(runtimeReserveBytes)} GB (the step's CUDA runtime ${gb(STEP_RUNTIME_BYTES)} GB, measured; ` +
      `${communicators} NCCL communicators x ${gb(NCCL_COMMUNICATOR_BYTES)} GB), and PyTorch 1.11's caching allocator holding ${+(100 * DEFAULT_ALLOCATOR_CACHE_SHARE).toFixed(1)}% of the tensors on top (measured median)`,
  };
}

/**
 * The prequel's 206B candidate (NHIDDEN 14336, 82 layers, 128 heads; tp 4, pp 12, dp 8, micro-batch 2, bf16)
 * is published out of memory, while the same table's 203B candidate at the same split (r1300: NHIDDEN 13312,
 * 94 layers, 128 heads) ran at "67GB": by the pipeline partition the two first stages hold nearly the same
 * (6 layers of 14336 and a 14336-wide embedding shard against 7 of 13312 and a 13312-wide one: model states
 * within 1.5%, activations within 6%), and nothing else in the two rows differs. Our emulation of r1306's first
 * stage on an H100 (scripts/gpu/memory_step.py, models/hardware/measured/h100-sxm-memory.json: all twelve
 * in-flight micro-batches, DeepSpeed's BF16_Optimizer accumulators) allocated 52.9 GiB and used 59.5 GiB of
 * 79.2 with PyTorch's default allocator.
 */
function bloomDisputed(r: MeasurementRecord): string | undefined {
  if (r.id !== "r1306") return undefined;
  return "published out of memory, but the same table's r1300, whose first stage holds within 1.5% of its model states and 6% of its activations, " +
    "ran at 67 GB, and our H100 emulation of its first stage used 59.5 GiB of 79.2 (models/hardware/measured/h100-sxm-memory.json)";
}

/**
 * BLOOM's runs set CUDA_LAUNCH_BLOCKING=1 from the prequel's "dealing with JZ hanging on the large model"
 * onwards (chronicles-prequel.md; without it the 320-GPU runs always hung) and in the training itself
 * (tr11-176B-ml.slurm: "do not remove or the training will hang"). The prequel's "Best TFLOPs" runs come
 * before that section, so their launches are taken as asynchronous.
 */
function bloomLaunchBlocking(r: MeasurementRecord): string | undefined {
  if (r.table?.includes("Best TFLOPs") === true) return undefined;
  return "blocking kernel launches (CUDA_LAUNCH_BLOCKING=1, BigScience's workaround for hangs)";
}

/**
 * llm-foundry's benchmark rows were measured twice. The README's first tables (MPT-7B release, "TODO:
 * Update tables with torch 2.0 after next Composer release"; submit_benchmarks.py's image default
 * mosaicml/pytorch:1.13.1) are all bf16 with FSDP mixed_precision PURE, and the A100 40GB table and the
 * A100 80GB 70b rows still are those rows, number for number. The A100 80GB and H100 tables were measured
 * again later, as amp_bf16/amp_fp8 with mixed_precision DEFAULT, on the torch 2 images whose fp8 rows
 * install flash-attn 2.4.2 and Transformer Engine 0.10 (submit_benchmarks.py). The MPT yamls checkpoint
 * with activation_checkpointing_reentrant: false, and torch >= 2.1's non-reentrant checkpoint stops early
 * (PR #96866). It shows in the tables: against the first A100 80GB table, the re-measured rows that
 * recompute are 4-10% faster at 1-16k tokens (13b at 1024: MFU 55.23 to 59.48; 7b: 53.66 to 58.01; 13b
 * at 4096: 53.62 to 57.62) and 0-2% at 64k, where attention outweighs the skipped down projection, while
 * rows without recomputation moved 0-2% (3b at 1024: 61.56 to 62.73; 1b at 512: 60.38 to 60.68).
 */
function llmFoundryEarlyStop(r: MeasurementRecord): string | undefined {
  if (r.parallel.precision?.includes("DEFAULT") !== true) return undefined;
  return "re-measured rows (amp, FSDP mixed_precision DEFAULT) on torch 2: the non-reentrant checkpoint (activation_checkpointing_reentrant: false) stops before each block's last product";
}

/**
 * The Finetuning table's pipelined SFT rows print no virtual stages, but the launcher scripts that ran them
 * interleave one layer per virtual stage: NVIDIA/NeMo-Framework-Launcher examples/peft/llama/h100/
 * 13b_1node.sh (commit 7d6e2df: tp 1, pp 4, virtual_pipeline_model_parallel_size 10, 40 layers) and
 * 70b_2node.sh (commit 97f45c1: tp 4, pp 4, 20, 80 layers), both at global batch 32 on packed
 * 4096-token sequences in fp8, as the table's rows.
 */
function nemoFinetuningVirtualStages(r: MeasurementRecord, layers: number): { v: number; why: string } | undefined {
  const pp = r.parallel.pp ?? 1;
  if (r.table?.includes("Finetuning") !== true || layers % pp !== 0) return undefined;
  return { v: layers / pp, why: "NeMo-Framework-Launcher's SFT scripts: one layer per virtual stage" };
}

/**
 * The same SFT scripts run NeMo's Llama SFT recipe (NVIDIA/NeMo-Framework-Launcher launcher_scripts/conf/
 * peft/llama/sft.yaml, commit 0da9ad9: distributed_fused_adam with `dtype: bf16` and `grad_sync_dtype:
 * bf16`) with `fp8_params=true`. NeMo passes the configured dtype to Apex's DistributedFusedAdam and, under
 * fp8_params, has it store master weights (nemo/collections/nlp/models/language_modeling/
 * megatron_base_model.py, setup_optimization: `optim_dtype = str_to_dtype(get_config_arg('dtype', ...))`,
 * `if self.cfg.get('fp8_params', False): optim_kwargs['store_params'] = True`); Apex keeps its gradient
 * buffer in the gradient-sync dtype (apex/contrib/optimizers/distributed_fused_adam.py, init_grad_buffer,
 * `dtype=self.grad_sync_dtype`). So: bf16 gradients (2 bytes) and bf16 master weight, momentum and
 * variance (6 bytes) per parameter, against fp32 ones (4 and 12) in the pre-training recipes. Apex's step
 * makes no fp32 copy of the gradients; the model's copy term (optimizerStepCopyBytes, Megatron's and
 * DeepSpeed's) stays below these rows' activations, so it sets none of their peaks.
 */
function nemoFinetuningOptimizer(r: MeasurementRecord): { fp32Gradients: boolean; optimizerStateBytes: number; why: string } | undefined {
  if (r.table?.includes("Finetuning") !== true) return undefined;
  return { fp32Gradients: false, optimizerStateBytes: 6, why: "NeMo's Llama SFT recipe: Apex DistributedFusedAdam in bf16 (bf16 gradients; bf16 master weight, momentum and variance)" };
}

/**
 * Nemotron-4 340B is the one pre-training model whose NVIDIA configs set the optimizer to bf16:
 * NVIDIA/dgxc-benchmarking nemotron/nemotron4-340b-synth.yaml (the benchmark recipe for this model on 128
 * or more H100s, run in the NeMo 24.09 container, launch.sh FW_VERSION) and NVIDIA/NeMo-Framework-Launcher
 * launcher_scripts/conf/training/nemotron/nemotron_340b.yaml (commit 6daee02) both have
 * `optim: name: distributed_fused_adam, grad_sync_dtype: bf16, dtype: bf16`; the launcher's 8B and 22B
 * configs keep the fp32 defaults. With `dtype` equal to the model's bf16 and no fp8_params, NeMo has Apex
 * store no master weights (megatron_base_model.py setup_optimization: `elif optim_dtype == model_dtype:
 * optim_kwargs['store_params'] = False`): the state is a bf16 momentum and variance, 4 bytes per parameter,
 * and the gradient buffer is bf16 (the grad-sync dtype, as for the SFT rows above).
 */
function nemotron340bOptimizer(r: MeasurementRecord): { fp32Gradients: boolean; optimizerStateBytes: number; why: string } | undefined {
  if (r.table?.includes("Pretraining") !== true || !/nemotron.*340b/i.test(r.model.name)) return undefined;
  return { fp32Gradients: false, optimizerStateBytes: 4, why: "NVIDIA's Nemotron-4 340B config: Apex DistributedFusedAdam with dtype and grad_sync_dtype bf16 (bf16 gradients; bf16 momentum and variance, no master copy)" };
}

/**
 * A fused attention kernel, by how much longer its forward and backward take than the next faster
 * generation's on the same GPU. The GPU priors (models/hardware/gpus) describe the best kernel of their
 * generation; `attentionSlowdown` chains these ratios from there down to the kernel a framework ran.
 */
export type AttentionKernelName = "flash-attention-3" | "flash-attention-2" | "triton-flash-2022";

/**
 * - FlashAttention-3 is "around 1.5-2.0x faster than FlashAttention-2 in the forward pass and 1.5-1.75x
 *   faster in the backward pass" on H100 (Shah et al. 2024, section 4.1): 1.75x and 1.625x, the middles.
 * - FlashAttention-2 is "around 1.3-1.5x faster than FlashAttention in Triton in the forward pass and
 *   around 2x faster in the backward pass" (Dao 2023, section 4.1, A100): 1.4x and 2x.
 */
const SLOWER_THAN_NEXT: Readonly<Record<AttentionKernelName, { next: AttentionKernelName; forward: number; backward: number } | undefined>> = {
  "flash-attention-3": undefined,
  "flash-attention-2": { next: "flash-attention-3", forward: 1.75, backward: 1.625 },
  "triton-flash-2022": { next: "flash-attention-2", forward: 1.4, backward: 2 },
};

/** The kernel each GPU's attentionMax prior was measured with (the `sources` of models/hardware/gpus/*.json). */
const PRIOR_KERNEL: Readonly<Record<string, AttentionKernelName>> = {
  "a100-sxm-40gb": "flash-attention-2", "a100-sxm-80gb": "flash-attention-2",
  "h100-sxm": "flash-attention-3", "h100-pcie": "flash-attention-3", "h200-sxm": "flash-attention-3",
};

/**
 * How many times longer `kernel` takes than the GPU's prior kernel, forward and backward; undefined when
 * the GPU's prior is of another family (B200's FlashAttention-4, MI300X, V100) and no ratio is published.
 */
export function attentionSlowdown(kernel: AttentionKernelName, gpuName: string): { forward: number; backward: number } | undefined {
  const prior = PRIOR_KERNEL[gpuName];
  if (prior === undefined) return undefined;
  let forward = 1;
  let backward = 1;
  for (let k: AttentionKernelName = kernel; k !== prior; ) {
    const step = SLOWER_THAN_NEXT[k];
    if (step === undefined) return undefined; // the prior is older than the kernel: no ratio to apply
    forward *= step.forward;
    backward *= step.backward;
    k = step.next;
  }
  return { forward, backward };
}

const MEGATRON_2021 = {
  // Megatron-LM before 2022: no flash attention, no sequence parallel; GPT dropout 0.1 (arguments.py defaults).
  flashAttention: false, dropout: true, zero: 0, recompute: "full", precision: "fp16", sequenceParallel: false,
  // Its ColumnParallelLinear all-reduces the input gradient synchronously (copy_to_tensor_model_parallel_region),
  // as the 2021 fork Megatron-DeepSpeed still does (bigscience-workshop/Megatron-DeepSpeed megatron/mpu/layers.py);
  // the asynchronous path (ColumnParallelLinearWithAsyncAllreduce) came with the 2022 sequence-parallel work.
  tpSyncBackward: true,
  // Pipeline transfers as 1/tp slices, all-gathered by the receiver: Megatron-LM's scatter/gather optimisation
  // (SC'21 section 4.1; on unless --no-scatter-gather-tensors-in-pipeline, off under SP) and DeepSpeed's
  // pipeline engine for Megatron-DeepSpeed (pipe_partitioned / grad_partitioned, true by default).
  ppScatterGather: true,
} as const;

// NeMo / Megatron-Bridge recipes: Transformer Engine fused attention, the distributed optimizer (ZeRO-1),
// sequence parallel with tp > 1, no recomputation in the pre-training recipes of the tables.
const NVIDIA_RECIPES = {
  flashAttention: true, dropout: false, zero: 1, recompute: "none", precision: "fp8", sequenceParallel: true,
  // The performance recipes turn on tp_comm_overlap with tp > 1 on H100/B200 (NeMo performance tuning guide).
  tpCommOverlap: true,
  // NeMo's GPT-3 recipes use the GPT-2 BPE vocabulary padded to 51,200 (Megatron-LM default padding).
  vocab: 51200,
} as const;

// PyTorch FSDP stacks (llm-foundry, torchtitan, the IBM blogs): FULL_SHARD is ZeRO-3; attention through
// scaled_dot_product_attention, whose flash backend is FlashAttention-2 since PyTorch 2.2 (release notes).
// Each builds its model in fp32 and gives FSDP a bf16 param_dtype (Composer's 'PURE' mixed precision,
// torchtitan's MixedPrecisionPolicy, fms-fsdp's bfSixteen): the sharded parameters keep fp32 and are cast
// for each all-gather, so the fp32 shard is the only stored copy and the optimizer's master.
const FSDP = {
  flashAttention: true, dropout: false, zero: 3, recompute: "none", precision: "bf16", sequenceParallel: false, attentionKernel: "flash-attention-2",
  fp32ShardOnly: "weights stored only as their fp32 shard, cast to bf16 as each layer is gathered (FSDP MixedPrecision: no 16-bit shard)",
} as const;

const skipAll = (why: string) => () => why;

export const PROFILES: Readonly<Record<string, SourceProfile>> = {
  "megatron-sc21": { framework: "Megatron-LM 2021 (examples/sc21/run_table_1.sh)", ...MEGATRON_2021, tflops: "megatron-hardware" },
  "megatron-gpt2-2020-readme": {
    framework: "Megatron-LM 2020 (GPT-2 scripts: --checkpoint-activations, fp16)", ...MEGATRON_2021,
    // In 2020 Megatron's --batch-size was per data-parallel rank and there was no gradient accumulation.
    microBatch: (r) => (r.parallel.global_batch_size !== null && r.parallel.dp !== null ? r.parallel.global_batch_size / r.parallel.dp : undefined),
    skip: (r) => (r.hardware.gpu?.includes("V100") === true ? "V100 (DGX-2): no DGX-2 cluster (16 GPUs on NVSwitch) is built in" : undefined),
  },
  "megatron-2021-readme": { framework: "Megatron-LM 2021", ...MEGATRON_2021, skip: skipAll("tensor/pipeline split not published (the same runs are SC'21 Table 1)") },
  "korthikanti-2022": {
    // The paper's Megatron-LM (megatron/mpu/layers.py at NVIDIA/Megatron-LM 02bb1f5) already runs the
    // column-parallel backward collectives asynchronously (ColumnParallelLinearWithAsyncAllreduce, on unless
    // --no-async-tensor-model-parallel-allreduce; ColumnParallelLinearWithSequenceParallelism).
    framework: "Megatron-LM 2022 (Calculon's reproduction: fp16, no ZeRO)", ...MEGATRON_2021, vocab: 51200, tpSyncBackward: false,
  },
  "mt-nlg-530b": {
    // Megatron-DeepSpeed with full recomputation (the 96*B*s*l*h^2 formula reproduces the time); GPT-2 vocabulary padded to 51,200.
    framework: "Megatron-DeepSpeed 2021", ...MEGATRON_2021, zero: 1, vocab: 51200, deepspeedPipeline: true, deepspeedAccumulation: true,
  },
  "bloom-176b": {
    // Megatron-DeepSpeed 2022 (no flash attention, no SP), ZeRO-1, full checkpointing (tr11 README); BLOOM's
    // released config has hidden_dropout = attention_dropout = 0.0; the prequel's earlier runs used fp16.
    framework: "Megatron-DeepSpeed 2022 (BigScience tr11)", flashAttention: false, dropout: false, zero: 1, recompute: "full",
    precision: "fp16", sequenceParallel: false, vocab: 250000, heads: 64, seqLen: 2048, deepspeedPipeline: true,
    deepspeedBf16Optimizer: true, deepspeedAccumulation: true, tpSyncBackward: true, launchBlocking: bloomLaunchBlocking,
    // tr11's ds_config has no "pipeline" section, so DeepSpeed's defaults partition the transfers.
    ppScatterGather: true,
    // ALiBi, no position table: "--position-embedding-type alibi" in the tr11 README's "Misc features" and its
    // slurm script (bigscience-workshop/bigscience train/tr11-176B-ml), as in the released BLOOM.
    positionEmbedding: "alibi",
    // "We use the added by us embedding norm" (the same README: --embed-layernorm), BLOOM's word_embeddings_layernorm.
    embeddingNorm: true,
    runtime: bloomRuntime,
    disputed: bloomDisputed,
  },
  "megatron-h100-2024": {
    // As test/planner/megatron-table.test.ts: bf16, Transformer Engine attention, SP, distributed optimizer.
    // The README lists --tp-comm-overlap among the optimizations of these runs.
    framework: "Megatron-Core 2024", flashAttention: true, dropout: false, zero: 1, recompute: "none", precision: "bf16",
    sequenceParallel: true, tpCommOverlap: true, tflops: "megatron-model",
  },
  "nemo-performance-summary": {
    framework: "NeMo 24.03/24.07", ...NVIDIA_RECIPES,
    // The NeMo launcher that ran the 24.03.01 container switched Transformer Engine's cuDNN attention off,
    // so DotProductAttention took flash-attn 2 (TE then pinned flash-attn <= 2.4.2), context parallel or not:
    // NVIDIA/NeMo-Framework-Launcher launcher_scripts/conf/config.yaml at 01d07738 ("container:
    // nvcr.io/nvidia/nemo:24.03.01.framework" ... "NVTE_FUSED_ATTN: 0 # Disable cudnn FA until we've tested
    // it more"; removed by the launcher's PR #422, "enable fused attention", August 2024). What the 24.07
    // tables ran is not established: those keep the GPU's prior kernel.
    attentionKernel: (r) => (r.publication.includes("NeMo24.03") ? "flash-attention-2" : undefined),
    virtualStages: nemoFinetuningVirtualStages,
    optimizer: (r) => nemoFinetuningOptimizer(r) ?? nemotron340bOptimizer(r),
  },
  "megatron-bridge-performance": { framework: "Megatron-Bridge 25.09/25.11", ...NVIDIA_RECIPES },
  // The benchmark sweep runs attn_impl 'triton' unless told otherwise (scripts/train/benchmarking/
  // submit_benchmarks.py, --attn_impl default 'triton'), the kernel of llmfoundry/models/layers/flash_attn_triton.py.
  "llm-foundry-mpt": {
    framework: "MosaicML llm-foundry (Composer FSDP)", ...FSDP, attentionKernel: "triton-flash-2022",
    // The MPT yamls train with Composer's DecoupledAdamW (weight_decay 0.0) and clip gradients by norm
    // (scripts/train/yamls/pretrain/mpt-*.yaml: optimizer decoupled_adamw, algorithms gradient_clipping).
    // DecoupledAdamW.adamw loops over the parameters one operation at a time (composer/optim/
    // decoupled_weight_decay.py), each a kernel over the fp32 shard: mul_ and add_ on exp_avg (8 + 12
    // bytes per parameter), mul_ and addcmul_ on exp_avg_sq (8 + 12), sqrt, the division by the bias
    // correction and add_(eps) into a new denominator (8 + 8 + 8), addcdiv_ into the parameter (16): 80.
    // FSDP's clip_grad_norm_ reads every gradient for the norm and scales it in place (4 + 8): 92 in all,
    // where a fused Adam moves 30.
    // ComposerMPTCausalLM's loss_fn defaults to 'fused_crossentropy', flash-attn's CrossEntropyLoss
    // (llmfoundry/models/mpt/modeling_mpt.py, 2023), which the benchmark yamls never override.
    fusedCrossEntropy: "loss: flash-attn's fused cross-entropy, 16-bit logits and gradient, no fp32 copy (llm-foundry's MPT default loss_fn 'fused_crossentropy')",
    recomputeEarlyStop: llmFoundryEarlyStop,
    optimizerStep: {
      bytesPerParam: 92,
      why: "optimizer step: Composer's DecoupledAdamW, one kernel per operation, and gradient clipping move 92 bytes per parameter of the shard (fused Adam: 30)",
    },
  },
  "torchtitan": {
    // torchtitan's llama3 configs default to selective (op) activation checkpointing, whose policy saves the
    // attention output and every other matmul output and recomputes the rest (torchtitan
    // parallelize_llama.py `_save_list`, "mm_count % 2"): about half the forward's matmuls are redone.
    framework: "torchtitan (FSDP2)", ...FSDP, recompute: "selective", selectiveShare: 0.5,
    // torchtitan's float8 is torchao's Float8Linear, whose autograd function saves the high-precision input
    // (torchao/float8/float8_linear.py, matmul_with_hp_or_float8_args: save_for_backward(input_hp, weight_hp_t)).
    fp8Keep16BitInputs: "fp8 linears keep their 16-bit inputs (torchao Float8Linear saves input_hp)",
    // Full and per-layer checkpointing wrap each block in ptd_checkpoint_wrapper(module, preserve_rng_state=False)
    // (parallelize_llama.py _apply_ac_to_transformer_block): torch's checkpoint_wrapper, NO_REENTRANT by default
    // since torch 2.2 (pytorch PR #108435), whose non-reentrant checkpoint stops early by default since 2.1
    // (PR #96866); torchtitan runs on torch nightlies of 2024 and later.
    recomputeEarlyStop: "checkpointed blocks through ptd_checkpoint_wrapper (non-reentrant): the recomputation stops before each block's last product (torchtitan parallelize_llama.py, torch>=2.2)",
    skip: (r) => (r.hardware.gpu?.includes("96GB") === true ? "H100 96GB HBM2e at a 500 W limit (Grand Teton) is not a built-in GPU" : undefined),
  },
  "pytorch-fsdp-ibm-2024": {
    framework: "PyTorch FSDP (IBM foundation-model-stack)", ...FSDP,
    // fms-fsdp's launch scripts shard the 7B and 13B models with --sharding_strategy=hsdp (FSDP
    // HYBRID_SHARD over the 8 GPUs of a node) and the 34B and 70B with fsdp (FULL_SHARD)
    // (foundation-model-stack/fms-fsdp scripts/7b.sh, 13b.sh, 34b.sh, 70b.sh).
    shardGroup: (r) => (r.model.params_b !== null && r.model.params_b <= 13 ? 8 : undefined),
    // fms-fsdp wraps the checkpointed blocks in checkpoint_wrapper(checkpoint_impl=CheckpointImpl.NO_REENTRANT)
    // (fms_fsdp/policies/ac_handler.py) and requires torch>=2.2 (requirements.txt), whose non-reentrant
    // checkpoint stops recomputing early by default (torch.utils.checkpoint.set_checkpoint_early_stop).
    recomputeEarlyStop: "checkpointed blocks through PyTorch's non-reentrant checkpoint: the recomputation stops before each block's last product (fms-fsdp ac_handler.py, torch>=2.2)",
    skip: (r) => (r.parallel.recompute?.includes("not restated") === true ? "activation checkpointing share not stated per row" : undefined),
  },
  "llama3-405b": {
    // Meta's 4D parallelism: flash attention, SP with TP; no recompute is stated, Megatron's default is none.
    framework: "Meta Llama 3 training stack", flashAttention: true, dropout: false, zero: 2, recompute: "none", precision: "bf16",
    sequenceParallel: true, tflops: "palm",
    // The paper names no attention kernel; pre-training ran in the first half of 2024, before FlashAttention-3's
    // release (Shah et al., July 2024), when FlashAttention-2 was the fastest published kernel.
    attentionKernel: "flash-attention-2",
    // Section 3.3.2: an interleaved schedule (Narayanan et al. 2021) whose count of virtual stages is not
    // published, with one Transformer layer less on the first and the last stage: 126 layers + the embedding
    // + the output = 128 layer slots over 16 stages. The schedule's smallest bubble puts one slot in each
    // virtual stage (8 per GPU); with 16 to 32 micro-batches per pipeline, 1F1B's bubble (15 of every 31 to
    // 47 slots) would cap MFU far below the published 38-43%.
    virtualStages: (r, layers) => {
      const pp = r.parallel.pp ?? 1;
      if (!/interleaved/.test(r.parallel.other ?? "") || (layers + 2) % pp !== 0) return undefined;
      return { v: (layers + 2) / pp, why: "the paper's interleaved schedule; count not stated: one layer slot per virtual stage" };
    },
  },
  "flashattention": {
    framework: "flash-attention training code", ...FSDP, zero: 0,
    skip: skipAll("batch and micro-batch not stated (Table 1 states no parallel setting either)"),
  },
  "megascale-2024": { framework: "Megatron-LM / MegaScale", ...MEGATRON_2021, skip: skipAll("GPU SKU not stated ('NVIDIA Ampere GPUs')") },
  "opt-175b": { framework: "metaseq", ...FSDP, skip: skipAll("a published maximum ('up to'), FLOP counting not stated") },
  "zero-2020": { framework: "DeepSpeed ZeRO", ...MEGATRON_2021, skip: skipAll("no configuration published in text (V100, lower bound)") },
  "megatron-lm-2019": { framework: "Megatron-LM 2019", ...MEGATRON_2021, skip: skipAll("V100 DGX-2H: no DGX-2 cluster is built in; scaling efficiencies only") },
};

/** The attention kernel a source's framework ran for record `r` (undefined: the GPU's prior kernel). */
export function attentionKernelOf(profile: SourceProfile, r: MeasurementRecord): AttentionKernelName | undefined {
  return typeof profile.attentionKernel === "function" ? profile.attentionKernel(r) : profile.attentionKernel;
}

/** A source with no profile is reported as skipped, not guessed at. */
export function profileOf(source: string): SourceProfile | undefined {
  return PROFILES[source];
}
