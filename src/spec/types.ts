/** The three kinds of data meshplan reads: a model (shapes only), hardware (peaks and links), a plan (degrees and knobs). */

export type MlpKind = "swiglu" | "gelu";
export type NormKind = "rmsnorm" | "layernorm";
/**
 * How positions enter: rotary (RoPE, Su et al. 2021) on Q and K; a learned table added to the embedding
 * (GPT-2, GPT-3); or ALiBi (Press et al. 2022, "Train Short, Test Long"), a fixed bias on the attention
 * scores proportional to the query-key distance, with neither parameters nor an extra pass (BLOOM, MPT).
 */
export type PositionEmbedding = "rope" | "learned" | "alibi";

export interface MoeSpec {
  readonly experts: number;
  readonly topK: number;
}

export interface ModelSpec {
  readonly name: string;
  readonly displayName: string;
  readonly layers: number;
  readonly hiddenSize: number;
  readonly attentionHeads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ffnHiddenSize: number;
  readonly mlp: MlpKind;
  readonly norm: NormKind;
  readonly vocabSize: number;
  readonly tiedEmbeddings: boolean;
  readonly positionEmbedding: PositionEmbedding;
  readonly linearBias: boolean;
  readonly qkvBias: boolean;
  readonly dropout: boolean;
  /**
   * Extension: a norm of the model's kind right after the input embedding (BLOOM's
   * word_embeddings_layernorm, Megatron-DeepSpeed's --embed-layernorm). Absent or false: none.
   */
  readonly embeddingNorm?: boolean;
  /** Training context length (tokens per sequence) of the published run; the default `--seq`. */
  readonly seqLen: number;
  /** Why the default sequence is shorter than the file's positions, when it is (a Hugging Face import). */
  readonly defaultSeqNote?: string;
  /** Published global batch in sequences, when known; the default `--global-batch`. */
  readonly globalBatch: number | undefined;
  readonly moe: MoeSpec | undefined;
  readonly publishedParameters: number | undefined;
  readonly source: string;
}

export type Precision = "fp32" | "tf32" | "fp16" | "bf16" | "fp8";
export const PRECISIONS: readonly Precision[] = ["fp32", "tf32", "fp16", "bf16", "fp8"];
/** Precisions a training run may choose with --precision (fp32/tf32 master weights are always kept for Adam). */
export const TRAINING_PRECISIONS: readonly Precision[] = ["bf16", "fp16", "fp8"];

export interface GpuEfficiency {
  /** Fraction of the dense peak that a large GEMM reaches. */
  readonly matmulMax: number;
  /** Fixed time per GEMM kernel (launch and tail). */
  readonly matmulOverheadSeconds: number;
  /** Fraction of the 16-bit peak that fused (flash) attention reaches, forward and backward. */
  readonly attentionMax: number;
  /** Achieved fraction of HBM bandwidth for streaming (element-wise) kernels. */
  readonly memoryBandwidth: number;
  /**
   * Extension: fraction of the fp8 dense peak that a large fp8 GEMM reaches. Absent: matmulMax (the
   * 16-bit figure). Set by the calibration layer (models/hardware/calibration.json) where it is fitted.
   */
  readonly fp8MatmulMax?: number;
  /**
   * Extension: achieved fraction of HBM bandwidth for the optimizer step (one fused pass over the shard's
   * states). Absent: memoryBandwidth. Set by the executor's device profile, whose optimizer is a
   * JavaScript loop over typed arrays while its element-wise kernels are TensorFlow.js calls.
   */
  readonly optimizerBandwidth?: number;
  /**
   * Extension: achieved fraction of HBM bandwidth for the vocabulary cross-entropy (compute.ts headTimes).
   * Absent: memoryBandwidth. Set by the executor's device profile, which measures its own cross-entropy:
   * a few large TensorFlow.js calls over the logits, where the layers' element-wise work is many small ones.
   */
  readonly lossBandwidth?: number;
  /** Extension: fixed time of the cross-entropy per pass (forward or backward). Absent: 0. Set with lossBandwidth. */
  readonly lossOverheadSeconds?: number;
  /**
   * Extension: achieved fraction of HBM bandwidth for the input embedding's passes, in the bytes
   * compute.ts embeddingBytes counts (the lookup's rows forward; the table's dense gradient backward).
   * Absent: memoryBandwidth. Set by the executor's device profile, which times its own embedding: a few
   * TensorFlow.js calls whose table-sized gradient streams far faster than the layers' many small kernels.
   */
  readonly embeddingBandwidth?: number;
  /** Extension: fixed time of the input embedding per pass (forward or backward). Absent: 0. Set with embeddingBandwidth. */
  readonly embeddingOverheadSeconds?: number;
  /**
   * Extension: achieved fraction of HBM bandwidth for a mixture of experts' token routing (softmax, top-k,
   * dispatch and combine), in the bytes planner/cost/moe-routing.ts counts. Absent: memoryBandwidth. Set
   * by the executor's device profile, which times its own routing: gathers, concatenations and index lists,
   * many small TensorFlow.js calls.
   */
  readonly moeRoutingBandwidth?: number;
  /** Extension: fixed time of a mixture of experts' routing per layer and pass (forward or backward). Absent: 0. Set with moeRoutingBandwidth. */
  readonly moeRoutingOverheadSeconds?: number;
  /**
   * Extension: fraction by which compute slows while a data-parallel collective runs beside it (SM and HBM
   * contention; src/planner/cost/communication.ts dpContention). Absent: 0, no contention (the executor's
   * CPU profile, whose collectives never overlap its passes).
   */
  readonly commOverlapSlowdown?: number;
  /**
   * Extension: how one transformer layer's forward + input-gradient (B) + weight-gradient (W) time splits
   * between the three passes, measured where the roofline's split is known to be off (the executor's
   * TensorFlow.js profile: src/executor/measure/passes.ts); the three sum to 1. The layer's total stays
   * the roofline's. Absent: each pass as the roofline prices it.
   */
  readonly layerPassShares?: { readonly forward: number; readonly backwardInput: number; readonly backwardWeight: number };
  /**
   * Extension: seconds per weight parameter that a GEMM's weights cost the first time a forward uses a
   * new weight tensor: TensorFlow.js's wasm backend (XNNPACK) creates an operator and packs the weights
   * for each weight tensor it has not multiplied before, and the executor's weights are new tensors
   * after every optimizer step (under ZeRO 3 after every gather). Measured by the executor's calibrate
   * (src/executor/measure/passes.ts firstUseSeconds). Absent: 0 (a GPU's GEMMs read the weights as they lie).
   */
  readonly weightFirstUseSecondsPerParam?: number;
}

/**
 * Seconds of one matrix product y[m, n] = x[m, k] w[n, k]^T at each point of a grid over m, k and n,
 * measured on the GPU (models/hardware/measured, written by scripts/gpu/measure.py).
 */
export interface GemmGrid {
  readonly m: readonly number[];
  readonly k: readonly number[];
  readonly n: readonly number[];
  /** Index (i * k.length + j) * n.length + l for m[i], k[j], n[l]. */
  readonly seconds: readonly number[];
  /** Median achieved FLOP/s of the points with m, k and n all at least PLATEAU_MIN_DIM (spec/measured.ts). */
  readonly plateauFlopsPerSecond: number;
}

/**
 * One fused attention kernel's measured rate by key length: forward FLOPs over the seconds of a forward and
 * its backward (the backward's FLOPs, a fixed multiple of the forward's, are left to the cost model's
 * convention; the length curve is a ratio of these rates, in which that multiple cancels).
 */
export interface MeasuredAttention {
  readonly kernel: string;
  readonly lengths: readonly number[];
  /** Causal, FLOPs counted with the mask's halving. */
  readonly causalFlopsPerSecond: readonly number[];
  readonly unmaskedFlopsPerSecond: readonly number[];
}

/**
 * Megatron-LM's unfused attention products (baddbmm, bmm over strided q, k, v views) at head dimensions
 * off the tensor cores' 16-byte alignment, bf16: forward plus backward FLOPs over their seconds, the
 * median over the script's passes, by head dimension (ascending).
 */
export interface MeasuredMisalignedAttention {
  readonly headDims: readonly number[];
  readonly flopsPerSecond: readonly number[];
}

/** What was measured on one GPU, replacing the efficiency model's curves for it (GpuSpec.measured). */
export interface MeasuredGpu {
  readonly file: string;
  /** Device, driver and software the figures were taken with. */
  readonly device: string;
  readonly gemm16: GemmGrid;
  readonly gemmFp8: GemmGrid | undefined;
  readonly attention: MeasuredAttention | undefined;
  /** An element-wise add over large buffers (two reads, one write): bytes moved per second. */
  readonly streamBytesPerSecond: number | undefined;
  /** Where measured (measure.py's alignment section); misaligned attention then runs at these rates. */
  readonly misalignedAttention: MeasuredMisalignedAttention | undefined;
}

export interface GpuSpec {
  readonly name: string;
  readonly displayName: string;
  readonly memoryBytes: number;
  readonly hbmBytesPerSecond: number;
  readonly peakFlopsPerSecond: Partial<Record<Precision, number>>;
  /** GPU-to-GPU fabric bandwidth per direction per GPU; 0 when the GPU has none. */
  readonly nvlinkBytesPerSecond: number;
  readonly efficiency: GpuEfficiency;
  /** CUDA/ROCm context, BLAS workspace and communication buffers that the framework allocator never sees. */
  readonly runtimeReserveBytes: number;
  readonly sources: Readonly<Record<string, string>>;
  /**
   * Extension: figures measured on this GPU (the GPU file's `measured`). Where present, GEMM times follow the
   * measured grid's shape, fused attention the measured kernel's length curve and misaligned unfused
   * attention the measured rates (src/planner/cost).
   */
  readonly measured?: MeasuredGpu;
}

export interface LinkSpec {
  readonly link: string;
  /** Per direction, per GPU. */
  readonly bytesPerSecondPerGpu: number;
  /** The alpha of the alpha-beta model: fixed cost of one step of a collective. */
  readonly latencySeconds: number;
  /** Achieved NCCL bus bandwidth divided by bytesPerSecondPerGpu. */
  readonly busBandwidthEfficiency: number;
  /**
   * Extension, inter-node links only: the most line rate (bytes per second per direction) that one group's
   * ring drives across a node boundary, however many of its members a node holds: where NCCL routes a
   * communicator through fewer NICs than it has members per node (Jean Zay's Omni-Path under NCCL 2.10:
   * one port pair). Absent: every member drives its own share (k * bytesPerSecondPerGpu).
   */
  readonly maxBytesPerSecondPerGroup?: number;
}

export interface ClusterSpec {
  readonly name: string;
  readonly displayName: string;
  readonly gpu: GpuSpec;
  readonly gpusPerNode: number;
  readonly intraNode: LinkSpec;
  readonly interNode: LinkSpec;
  readonly sources: Readonly<Record<string, string>>;
}

export type Schedule = "naive" | "gpipe" | "1f1b" | "interleaved" | "zb-h1" | "zb-v";
export const SCHEDULES: readonly Schedule[] = ["naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v"];
export type Recompute = "none" | "selective" | "full";
export const RECOMPUTES: readonly Recompute[] = ["none", "selective", "full"];
export type ZeroStage = 0 | 1 | 2 | 3;

/**
 * The lengths of a ZB-V chunk's B (input gradients, with whatever recomputation runs before it) and W
 * (weight gradients) in units of its forward: multiples of 1/4 from 1/4 to 8, so that plans of about the
 * same shape share one order (planner/cost/zb-v.ts vPassRatios).
 */
export interface VPassRatios {
  readonly backward: number;
  readonly weight: number;
}

/** A fully resolved plan: the `plan` object of the JSON contract, plus extensions. */
export interface Plan {
  readonly dp: number;
  readonly tp: number;
  readonly pp: number;
  readonly cp: number;
  readonly ep: number;
  readonly sequenceParallel: boolean;
  readonly virtualStages: number;
  readonly microBatch: number;
  readonly globalBatch: number;
  readonly seqLen: number;
  readonly schedule: Schedule;
  readonly zero: ZeroStage;
  readonly recompute: Recompute;
  readonly precision: Precision;
  readonly layersPerStage: readonly number[];
  /** Layers per stage that are fully recomputed (the rest follow `recompute` for none/selective). */
  readonly recomputeLayersPerStage: readonly number[];
  readonly parameterServers: number;
  readonly asynchronous: boolean;
  /** Extension: bound on how many steps a worker's weights may lag (asynchronous parameter servers). */
  readonly staleness: number;
  /** Extension: fused (flash) attention, which never stores the s x s score matrix. */
  readonly flashAttention: boolean;
  /** Extension: gradients accumulated and reduced in fp32 (Megatron does this for bf16). */
  readonly fp32Gradients: boolean;
  /**
   * Extension: tensor-parallel collectives overlapped with the GEMMs that produce or consume them
   * (Megatron-LM --tp-comm-overlap, Transformer Engine userbuffers). Absent or false: exposed.
   */
  readonly tpCommOverlap?: boolean;
  /**
   * Extension: the data-parallel reduction runs whole after the stage's last pass and the ZeRO-1 gather
   * whole after the optimizer step, instead of in buckets behind the passes (DeepSpeed's pipeline engine:
   * ReduceGrads and OptimizerStep after the schedule, deepspeed/runtime/pipe/schedule.py TrainSchedule).
   * Absent or false: overlapped (Megatron-LM, PyTorch DDP and FSDP). Only with ZeRO 0 or 1. The plan
   * search applies it (and ppBlockingSends) to pipelined candidates only.
   */
  readonly dpCommExposed?: boolean;
  /**
   * Extension: every data-parallel collective (ZeRO-2's per-micro-batch reduce-scatters and its gather
   * after the update, ZeRO-3's gathers) runs in line with the passes: the rank waits for it before its next
   * pass, nothing overlaps it (this project's executor, whose ranks run each collective in turn,
   * src/executor/parallel/state.ts). ZeRO 2/3 only (resolvePlan refuses 0/1). The per-micro-batch part joins
   * each stage's pass time (StageCost.blockingDpSeconds), so with a pipeline it stretches the schedule and
   * its bubbles too. Absent or false: overlapped in buckets, or exposed once per step with dpCommExposed
   * (which it excludes).
   */
  readonly dpCommBlocking?: boolean;
  /**
   * Extension: every stage-to-stage transfer holds both stages until it completes: the sender, and the
   * receiver before the pass that needs the data (DeepSpeed's pipeline engine: its SendActivation,
   * SendGrad, RecvActivation and RecvGrad instructions, deepspeed/runtime/pipe/schedule.py, call
   * deepspeed/runtime/pipe/p2p.py send and recv, which assert async_op is false). Absent or false: sends
   * run on their own stream beside the next pass and arrive on the receiver's receive stream.
   */
  readonly ppBlockingSends?: boolean;
  /**
   * Extension: each tensor-parallel rank sends only its 1/tp slice of a stage's output (or of its
   * gradient), and the receiving stage's tp group all-gathers the whole over its own link before using it:
   * Megatron-LM's scatter/gather optimisation (Narayanan et al. 2021, section 4.1; arguments.py
   * --no-scatter-gather-tensors-in-pipeline turns off what is on by default; moot under sequence parallel,
   * whose transfers are already split) and DeepSpeed's pipeline engine (pipe_partitioned and
   * grad_partitioned, both true by default in deepspeed/runtime/config.py; engine.py
   * _exec_forward_pass partitions the output with PartitionedTensor, the receiver calls full()). With
   * ppBlockingSends (DeepSpeed) the sender also re-gathers its own output before that micro-batch's
   * backward, and keeps only its slice meanwhile. Resolved only for tp > 1, pp > 1 without SP.
   */
  readonly ppScatterGather?: boolean;
  /**
   * Extension: every tensor-parallel collective of the backward runs synchronously, on the critical path
   * (Megatron-DeepSpeed and Megatron-LM before 2022: the column-parallel linear's backward all-reduce is
   * `copy_to_tensor_model_parallel_region`'s, bigscience-workshop/Megatron-DeepSpeed megatron/mpu/layers.py).
   * Absent or false: Megatron-LM's column-parallel backward issues the input gradient's reduction (and,
   * under SP, the input's re-gather) asynchronously and hides it behind the weight-gradient (input-gradient)
   * GEMM (LinearWithGradAccumulationAndAsyncCommunication in megatron/core/tensor_parallel/layers.py).
   */
  readonly tpSyncBackward?: boolean;
  /**
   * Extension: every kernel launch waits for the kernel before it to finish (CUDA_LAUNCH_BLOCKING=1, which
   * BLOOM's training set to stop hangs: bigscience train/tr11-176B-ml/tr11-176B-ml.slurm and
   * chronicles-prequel.md, "dealing with JZ hanging on the large model"), so the host's time to issue each
   * kernel is no longer hidden behind the kernels already queued. Charged per layer and micro-batch
   * (src/planner/cost/launch.ts). Absent or false: launches are asynchronous.
   */
  readonly launchBlocking?: boolean;
  /**
   * Extension: a layer recomputed in full stops once every tensor its backward needs is back, so its last
   * product (the MLP's down projection, whose output nothing saves) is not run again: PyTorch's
   * non-reentrant checkpoint (torch.utils.checkpoint, use_reentrant=False; set_checkpoint_early_stop, on
   * by default), which FSDP stacks wrap layers in. Measured on an H100: checkpointing an MPT block costs
   * 25.5% more time with it, 33.9% without (means over 16 shapes, models/hardware/measured/h100-sxm-blocks.json). Absent or
   * false: the whole forward runs again (Megatron-LM's and DeepSpeed's re-entrant checkpointing).
   */
  readonly recomputeEarlyStop?: boolean;
  /**
   * Extension: every stage keeps each in-flight micro-batch's output (16-bit, one per model chunk that
   * sends) until that micro-batch's backward (DeepSpeed's pipeline engine: buffers['outputs'] freed after
   * BackwardPass, deepspeed/runtime/pipe/engine.py). Absent or false: an output's data is freed once sent
   * (Megatron-LM deallocate_output_tensor). pp > 1 only (resolvePlan drops it otherwise).
   */
  readonly ppKeepOutputs?: boolean;
  /**
   * Extension: the 16-bit gradients autograd writes stay beside their fp32 accumulators until the next
   * backward (DeepSpeed's BF16_Optimizer: update_hp_grads(clear_lp_grads=False), deepspeed/runtime/
   * bf16_optimizer.py): 2 more bytes per parameter. Needs fp32Gradients and ZeRO 0 or 1 (the optimizer's).
   * Absent or false: the 16-bit gradient is folded into the fp32 one and dropped (Megatron-LM).
   */
  readonly keep16BitGrads?: boolean;
  /**
   * Extension: the loss is a fused cross-entropy kernel that keeps the 16-bit logits for its backward and
   * writes a 16-bit gradient there, with no fp32 copy (flash-attn's CrossEntropyLoss, flash_attn/losses/
   * cross_entropy.py, which llm-foundry's MPT uses by default: llmfoundry/models/mpt/modeling_mpt.py,
   * loss_fn 'fused_crossentropy'): 2 + 2 bytes per logit at the loss's backward (memory.ts lossBytes).
   * Absent or false: Megatron-LM's vocabulary-parallel cross-entropy, which keeps an fp32 copy (2 + 4).
   */
  readonly fusedCrossEntropy?: boolean;
  /**
   * Extension, fp8 only: the linears keep their 16-bit input for the weight gradient, as torchao's
   * Float8Linear does (torchao/float8/float8_linear.py: save_for_backward(input_hp, ...); torchtitan's
   * float8). Absent or false: Transformer Engine's, which keeps only the input's fp8 cast, 1 byte per
   * element (planner/cost/activations.ts).
   */
  readonly fp8Keep16BitInputs?: boolean;
  /**
   * Extension, ZeRO 3 only: each parameter is stored once, as its fp32 shard, which is also the
   * optimizer's master copy; its 16-bit form exists only while a layer is gathered (PyTorch FSDP with a
   * 16-bit param_dtype: "the optimizer step uses the sharded parameter in the original dtype" and FSDP
   * "does not require any extra memory to keep a high-precision copy", MixedPrecisionPolicy's docstring,
   * torch/distributed/fsdp/_fully_shard/_fsdp_api.py; FSDP1's MixedPrecision likewise keeps the sharded
   * FlatParameter in full precision and casts it for the all-gather). torchtitan, llm-foundry, fms-fsdp. Parameters 4 bytes per parameter of the shard, optimizer states 4 fewer:
   * 2 bytes less than ZeRO-3 as the ZeRO paper and DeepSpeed keep it (a 16-bit shard beside the fp32 master).
   */
  readonly fp32ShardOnly?: boolean;
  /**
   * Extension: bytes of optimizer state per parameter the optimizer keeps (before ZeRO shards them).
   * Absent: 12, mixed-precision Adam's fp32 master weight, momentum and variance (Rajbhandari et al. 2020,
   * section 3.1, "K = 12"). Apex's DistributedFusedAdam with a bf16 state dtype keeps 6 (bf16 master
   * weight, momentum and variance) or 4 (no master copy), as NeMo's SFT recipe configures it.
   */
  readonly optimizerStateBytes?: number;
  /**
   * Extension: bytes of HBM traffic per parameter of the rank's shard that one optimizer step moves (the
   * update and, where the stack clips gradients, the clipping). Absent: a fused Adam's, which reads and
   * writes each state once (2K + g + 2; planner/cost/stages.ts optimizerBytesPerParam). An optimizer that
   * runs one kernel per operation, as Composer's DecoupledAdamW does, moves several times that.
   */
  readonly optimizerStepBytesPerParam?: number;
  /**
   * Extension: bytes of HBM traffic per parameter held on the rank that each micro-batch's backward moves
   * to add its weight gradients into the accumulated ones, where the framework does that as a pass of its
   * own (planner/cost/stages.ts gradientAccumulationSeconds). Absent: none, the accumulation is fused into
   * the weight-gradient GEMM (Megatron-LM's gradient_accumulation_fusion) or the gradients leave each
   * micro-batch reduce-scattered (FSDP). PyTorch's autograd adding a 16-bit gradient into the one it holds
   * moves 6 (read 2 + 2, write 2) from the second micro-batch on; DeepSpeed's BF16_Optimizer, which casts
   * each micro-batch's bf16 gradient to fp32 and adds it into its fp32 accumulator, 18.
   */
  readonly gradientAccumulationBytesPerParam?: number;
  /**
   * Extension: bytes on each GPU outside the tensors the cost model counts (the CUDA context, the kernels
   * loaded, the communicators' buffers), where the training stack's differ from the GPU file's
   * runtimeReserveBytes (lazy kernel loading and one NCCL communicator). Absent: the GPU's.
   */
  readonly runtimeReserveBytes?: number;
  /**
   * Extension: the share of the tensors' bytes at the peak that the framework's caching allocator holds on
   * top, as cached blocks it cannot hand to the allocation at hand (fragmentation): a stage's peak is the
   * runtime reserve plus (1 + share) x its tensors (planner/cost/memory.ts withAllocatorCache). Absent: 0.
   * PyTorch's default allocator, measured on eight emulated BLOOM stages: 2.8-14.0% of the bytes allocated,
   * median 5.9%; with expandable segments 1.1-5.9%, median 2.8% (models/hardware/measured/README.md).
   */
  readonly allocatorCacheShare?: number;
  /**
   * Extension: hybrid sharding. ZeRO shards the model states over groups of this many of the dp * cp ranks
   * and replicates them across the groups (PyTorch FSDP HYBRID_SHARD, FSDP2 HSDP; DeepSpeed ZeRO++ hpZ,
   * MiCS): the gathers and reduce-scatters stay inside a group, and each rank's gradient shard is then
   * all-reduced across the replicas. Absent: one group of all dp * cp ranks. ZeRO >= 1, ep = 1.
   */
  readonly shardGroup?: number;
  /**
   * Extension: ZB-V only. The lengths of a chunk's B and W, in units of its forward, that the schedule's
   * order is found for (planner/cost/zb-v.ts): pinned (--zbv-passes), or the layer's passes as priced on
   * the plan's GPU (planner/cost/compute.ts withPricedVPasses: the search, simulate and execute, on its
   * device profile, set them). Absent: from one layer's FLOPs (planVPassRatios).
   */
  readonly vPassRatios?: VPassRatios;
}

/** A cluster of a given size: the topology with the number of GPUs in use. */
export interface ClusterShape {
  readonly spec: ClusterSpec;
  readonly gpus: number;
  readonly gpusPerNode: number;
}
