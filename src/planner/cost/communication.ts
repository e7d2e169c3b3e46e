import { microBatchCount } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { crossingsOfStage, holdsHead } from "../../spec/virtual-stages.js";
import { attentionWidthsPerRank } from "./activations.js";
import { collective, FREE, plus, times, type CollectiveCost } from "./collectives.js";
import type { HeadTimes, LayerTimes } from "./compute.js";
import { gradientBytesPerParam, PARAM_BYTES, zeroShardRanks, type RankParams } from "./memory.js";
import { layerParams, normParams } from "./params.js";
import { effectiveLink, groupPlacement, type EffectiveLink, type GroupKind } from "./placement.js";

/** The link each group's collectives cross, resolved once per plan. */
export interface Links {
  readonly tp: EffectiveLink;
  readonly cp: EffectiveLink;
  /** The ZeRO group: all dp*cp ranks, or one shard group under hybrid sharding. */
  readonly dp: EffectiveLink;
  /** Hybrid sharding only: the replicas of one shard, across which its gradients are all-reduced. */
  readonly dpReplica?: EffectiveLink;
  readonly edp: EffectiveLink;
  readonly ep: EffectiveLink;
  readonly pp: EffectiveLink;
}

export function resolveLinks(plan: Plan, shape: ClusterShape): Links {
  const link = (kind: GroupKind) => effectiveLink(groupPlacement(kind, plan, shape.gpusPerNode), shape);
  const links: Links = { tp: link("tp"), cp: link("cp"), dp: link("dp"), edp: link("edp"), ep: link("ep"), pp: link("pp") };
  return plan.shardGroup === undefined ? links : { ...links, dpReplica: link("dpr") };
}

/**
 * With --tp-comm-overlap a layer's all-gathers and reduce-scatters are split into chunks and pipelined
 * with the GEMMs that consume or produce them (Wang et al. 2023, "Overlap Communication with Dependent
 * Computation via Decomposition in Large Deep Learning Models", ASPLOS; Transformer Engine userbuffers),
 * so a layer's collectives cost only what exceeds its linear GEMMs: the forward GEMMs forward, the input-
 * and weight-gradient GEMMs backward. The embedding's and output layer's collectives stay exposed.
 */
function overlapWindow(plan: Plan, layer: LayerTimes): { forward: number; backward: number } {
  if (plan.tpCommOverlap !== true) return { forward: 0, backward: 0 };
  const linear = layer.backwardWeightSeconds; // the layer's linear GEMMs, one pass
  return { forward: linear, backward: 2 * linear };
}

/** The compute a stage's tensor-parallel collectives can hide behind: one layer's and the output layer's times. */
export interface TpWindows {
  readonly layer: LayerTimes;
  readonly head: HeadTimes;
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
 *
 * Sequence parallel keeps only the s*b*h/t block of each column-parallel linear's input (the memory the
 * paper's formula counts), so the backward all-gathers it again before the weight gradient: Korthikanti et
 * al. 2022, section 4.2.2 ("we need an extra all-gather ... in the backward pass"); Megatron-LM
 * tensor_parallel/layers.py LinearWithGradAccumulationAndAsyncCommunication.backward. That is two per layer
 * (QKV and the first MLP matrix; recomputed layers too, since their recomputed forward also keeps only the
 * local block) and one for the output layer.
 *
 * Megatron-LM's column-parallel linears (QKV, the first MLP matrix, the output layer) run their backward
 * collectives asynchronously (megatron/core/tensor_parallel/layers.py,
 * LinearWithGradAccumulationAndAsyncCommunication.backward; in 2022 already ColumnParallelLinearWith-
 * AsyncAllreduce / ...WithSequenceParallelism in megatron/mpu/layers.py): the SP re-gather of the input is
 * issued before the input-gradient GEMM and waited for after it, and the input gradient's all-reduce (SP:
 * reduce-scatter) is issued before the weight-gradient GEMM and waited for after it. Each costs only what
 * exceeds that GEMM, whose FLOPs equal the linear's forward (`columnBackwardExposure`). The row-parallel
 * linears' backward collectives (SP: the all-gather of the output gradient) stay on the critical path.
 * `tpSyncBackward` (Megatron-DeepSpeed, Megatron-LM before 2022) charges every one whole.
 *
 * The last stage's vocabulary-parallel cross-entropy all-reduces three fp32 numbers per token forward over
 * tp (the logits' max, the target logit and the sum of exponentials: Megatron-LM
 * tensor_parallel/cross_entropy.py _VocabParallelCrossEntropy.forward): vocabCrossEntropyCost.
 *
 * A mixture of experts split over ep > 1 with tp > 1 and SP (Megatron-Core's alltoall token dispatcher,
 * moe/token_dispatcher.py, with the experts split over tp as the MLP is, its default expert tensor parallel
 * size): the layer's input stays split over tp and each rank routes its own tokens; after the ep exchange
 * the tp ranks all-gather the token copies' rows they received (the dispatcher's num_global_tokens =
 * num_local_tokens x TP x EP) and reduce-scatter the experts' outputs before the exchange back. So the MLP
 * half of the layer moves the copies, x k h, where a dense MLP moves x h; backward, the reverse pair. With
 * ep 1 the experts take the dense MLP's collectives (its allgather dispatcher gathers the layer's input).
 */
export function tpCostPerMicroBatch(model: ModelSpec, plan: Plan, links: Links, stage: number, compute: TpWindows): PassCosts {
  const t = plan.tp;
  if (t <= 1) return NO_PASS;
  const bytes = 2 * tokensPerRank(plan) * model.hiddenSize;
  const ar = collective("all-reduce", t, bytes, links.tp);
  const ag = collective("all-gather", t, bytes, links.tp);
  const rs = collective("reduce-scatter", t, bytes, links.tp);
  const sp = plan.sequenceParallel;
  // The MLP half's pair: a dense MLP's (or the experts' with ep 1) all-gather and reduce-scatter of x h, or
  // under the alltoall dispatcher those of the token copies' rows, x k h.
  const copies = sp && plan.ep > 1 && model.moe !== undefined ? model.moe.topK : 1;
  const agMlp = copies === 1 ? ag : collective("all-gather", t, copies * bytes, links.tp);
  const rsMlp = copies === 1 ? rs : collective("reduce-scatter", t, copies * bytes, links.tp);
  const perLayer = sp ? plus(plus(ag, rs), plus(agMlp, rsMlp)) : times(ar, 2);
  const layers = plan.layersPerStage[stage] ?? 0;
  const recomputed = plan.recomputeLayersPerStage[stage] ?? 0;
  const window = overlapWindow(plan, compute.layer);
  const forwardLayer = exposedBeyond(perLayer, window.forward);
  const async = plan.tpCommOverlap !== true && plan.tpSyncBackward !== true;
  // Backward per layer: the row-parallel linears' collectives (SP: two all-gathers; none without SP), then
  // each column-parallel linear's input reduction (SP: reduce-scatter; else all-reduce) and SP re-gather.
  const column = sp ? plus(rs, ag) : ar;
  // The alltoall dispatcher's MLP half backward: the copies' output gradients all-gathered, their input
  // gradients reduce-scattered (no re-gather: the gathered copies are kept for the weight gradients).
  const dispatcherBackward = copies === 1 ? undefined : plus(agMlp, rsMlp);
  let backwardLayer: CollectiveCost;
  if (async) {
    const gemms = compute.layer.columnGemmSeconds;
    const hidden = gemms.reduce((acc, g) => plus(acc, columnBackwardExposure(sp, ar, ag, rs, g)), FREE);
    // A column-parallel linear the layer does not have as such (an MoE's experts) keeps its collectives exposed.
    const mlp = dispatcherBackward ?? plus(sp ? ag : FREE, times(column, 2 - gemms.length));
    backwardLayer = plus(plus(sp ? ag : FREE, hidden), mlp);
  } else {
    const mlp = dispatcherBackward ?? plus(sp ? ag : FREE, column);
    backwardLayer = exposedBeyond(plus(plus(sp ? ag : FREE, column), mlp), window.backward);
  }
  let forward = times(forwardLayer, layers);
  let backward = plus(times(backwardLayer, layers), times(forwardLayer, recomputed));
  if (stage === 0) {
    forward = plus(forward, sp ? rs : ar); // vocabulary-parallel embedding output
    if (sp) backward = plus(backward, ag);
  }
  if (holdsHead(plan, stage)) {
    if (sp) forward = plus(forward, ag); // gather the output layer's input
    forward = plus(forward, vocabCrossEntropyCost(plan, links));
    // The output layer is column-parallel over the vocabulary: its input gradient's reduction (SP: and its
    // input's re-gather) hides behind its own gradient GEMMs when async.
    const head = async ? columnBackwardExposure(sp, ar, ag, rs, compute.head.projectionSeconds) : column;
    backward = plus(backward, head);
  }
  const gathers = ppScatterGatherCounts(plan, stage);
  return { forward: plus(forward, times(ag, gathers.forward)), backward: plus(backward, times(ag, gathers.backward)) };
}

/**
 * All-gathers over tp of one whole stage output (or its gradient) that plan.ppScatterGather adds to stage
 * `stage` per micro-batch, on the critical path: the receiver gathers each activation before the forward
 * that needs it (Megatron-LM p2p_communication.py gather_split_1d_tensor; DeepSpeed engine.py
 * _exec_forward_pass, PartitionedTensor.full()) and each gradient before the backward; under DeepSpeed's
 * engine (ppBlockingSends) the sender also re-gathers its own output before that micro-batch's backward
 * (_exec_backward_pass, "Reconstruct if we previously partitioned the output"). One per model chunk that
 * receives from another stage: v activations (none into stage 0's first chunk), v gradients (none into the
 * head stage's last chunk; ZB-V's turn of the V stays on the GPU).
 */
export function ppScatterGatherCounts(plan: Plan, stage: number): { forward: number; backward: number } {
  // resolvePlan keeps the knob only for tp > 1, pp > 1 without SP.
  if (plan.ppScatterGather !== true) return { forward: 0, backward: 0 };
  const c = crossingsOfStage(plan, stage);
  return { forward: c.forwardReceives, backward: c.backwardReceives * (plan.ppBlockingSends === true ? 2 : 1) };
}

/**
 * One column-parallel linear's backward collectives under Megatron-LM's asynchronous path: the SP
 * re-gather behind the input-gradient GEMM, the input gradient's reduction behind the weight-gradient
 * GEMM, each GEMM taking `gemmSeconds` (the forward GEMM's FLOPs). Bytes are all counted; only the excess shows.
 */
function columnBackwardExposure(sp: boolean, ar: CollectiveCost, ag: CollectiveCost, rs: CollectiveCost, gemmSeconds: number): CollectiveCost {
  return sp ? plus(exposedBeyond(ag, gemmSeconds), exposedBeyond(rs, gemmSeconds)) : exposedBeyond(ar, gemmSeconds);
}

/**
 * Vocabulary-parallel cross-entropy on the last stage, per micro-batch: three all-reduces over tp of one
 * fp32 number per token (max logit, target logit, sum of exponentials; Megatron-LM
 * tensor_parallel/cross_entropy.py computes them in fp32 whatever the logits' type).
 */
export function vocabCrossEntropyCost(plan: Plan, links: Links): CollectiveCost {
  if (plan.tp <= 1) return FREE;
  return times(collective("all-reduce", plan.tp, 4 * tokensPerRank(plan), links.tp), 3);
}

/**
 * Under sequence parallel the weights every tp rank holds whole (both norms, the row-parallel biases of
 * attention output and MLP output (every expert's, of this rank's experts), the MoE router, the final norm; learned position embeddings, which the
 * cost model's embedding adds after its reduce-scatter, and a norm after the embedding) see only the rank's block of positions, so their
 * gradients are partial sums and are all-reduced over tp once per step, after the data-parallel reduction,
 * whole (not only a ZeRO shard): Megatron-LM core/distributed/finalize_model_grads.py
 * _allreduce_layernorm_grads (every parameter marked `sequence_parallel`, main-grad dtype). Small: a few
 * h per layer. dpCosts adds it to the once-per-step reduction (it hides behind the last backward like one).
 */
export function spReplicatedGradCost(model: ModelSpec, plan: Plan, links: Links, stage: number): CollectiveCost {
  if (!plan.sequenceParallel || plan.tp <= 1) return FREE;
  const lp = layerParams(model);
  const h = model.hiddenSize;
  // Biases: the attention output's and the MLP output's, one per expert held for a mixture of experts.
  const outputBiases = model.moe === undefined ? 1 : model.moe.experts / plan.ep;
  const perLayer = lp.norms + lp.router + (model.linearBias ? h + outputBiases * h : 0);
  let count = (plan.layersPerStage[stage] ?? 0) * perLayer;
  if (stage === 0 && model.positionEmbedding === "learned") count += model.seqLen * h;
  // A norm after the embedding (BLOOM's) works on the reduce-scattered rows too.
  if (stage === 0 && model.embeddingNorm === true) count += normParams(model);
  if (holdsHead(plan, stage)) count += normParams(model);
  return collective("all-reduce", plan.tp, gradientBytesPerParam(plan) * count, links.tp);
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
  const chunk = 2 * 2 * tokensPerRank(plan) * attentionWidthsPerRank(model, plan.tp).kv; // K and V, 16-bit
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

/**
 * One activation (or its gradient) crossing a stage boundary, from one GPU: split over tp under SP, and
 * under plan.ppScatterGather each tp rank sends its 1/tp slice (the receiver's all-gather is in
 * tpCostPerMicroBatch).
 */
export function ppTransfer(model: ModelSpec, plan: Plan, links: Links): CollectiveCost {
  if (plan.pp <= 1) return FREE;
  const r = plan.sequenceParallel || plan.ppScatterGather === true ? plan.tp : 1;
  return collective("send", 2, (2 * tokensPerRank(plan) * model.hiddenSize) / r, links.pp);
}

/** Sends per micro-batch by stage i: v forward (none out of the model's last chunk) and v backward (none out of its first), less ZB-V's turn, which stays on the GPU. */
export function ppSendsOfStage(plan: Plan, i: number): number {
  if (plan.pp <= 1) return 0;
  const c = crossingsOfStage(plan, i);
  return c.forwardSends + c.backwardSends;
}

/** Sends per micro-batch by the busiest stage. */
export function ppSendsPerMicroBatch(plan: Plan): number {
  let most = 0;
  for (let i = 0; i < plan.pp; i++) most = Math.max(most, ppSendsOfStage(plan, i));
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
  /** Buckets each chunk's traffic travels in (dpBucketCount). */
  readonly buckets: number;
}

const NO_DP: DpCosts = { reduceOnce: FREE, gatherOnce: FREE, perMicroBatchForward: FREE, perMicroBatchBackward: FREE, buckets: 1 };

/**
 * Gradient bucket size: PyTorch DDP's default bucket_cap_mb = 25 (MiB; torch/nn/parallel/distributed.py).
 * Megatron-LM's distributed optimizer buckets too, by parameter count (bucket_size, default max(40M params,
 * ...)); both the cost model and the simulator use the DDP figure.
 */
export const DP_BUCKET_BYTES = 25 * 2 ** 20;
/** Upper bound on buckets per chunk, to keep ZeRO-3 event graphs (every pass split) small. */
export const MAX_DP_BUCKETS = 32;

/**
 * How many buckets one chunk's gradients travel in: 25 MiB each, never splitting a layer (so at most one
 * per layer), at most MAX_DP_BUCKETS. The first gather bucket and the last reduction bucket have no compute
 * to hide behind, which is why the bucket count matters to the exposed time.
 */
export function dpBucketCount(plan: Plan, paramsOnGpu: number, layers: number): number {
  const v = plan.virtualStages;
  const bytesPerChunk = (paramsOnGpu * gradientBytesPerParam(plan)) / v;
  const layersPerChunk = Math.max(1, Math.floor(layers / v));
  return Math.max(1, Math.min(Math.ceil(bytesPerChunk / DP_BUCKET_BYTES), layersPerChunk, MAX_DP_BUCKETS));
}

/**
 * Buckets of a stage's chunk when its data-parallel collectives run in line (plan.dpCommBlocking, meshplan's
 * executor): one collective per unit, each layer, the embedding on the first stage and the head on the last
 * (src/executor/model/layout.ts chunkUnits, src/executor/parallel/state.ts), spread evenly over the v chunks,
 * at most MAX_DP_BUCKETS.
 */
export function inLineBucketCount(plan: Plan, layers: number, first: boolean, last: boolean): number {
  const units = layers + (first ? 1 : 0) + (last ? 1 : 0);
  return Math.max(1, Math.min(Math.round(units / plan.virtualStages), MAX_DP_BUCKETS));
}

/**
 * Gradient reduction and, under ZeRO, parameter gathering (Rajbhandari et al. 2020, section 7: stage 1 and
 * 2 move 2x the parameters per step like an all-reduce, stage 3 1.5x). Stage 2 and 3 reduce every
 * micro-batch, since a sharded gradient cannot accumulate locally. Dense weights reduce over dp*cp, expert
 * weights over dp*cp/ep. Under hybrid sharding (plan.shardGroup) the gathers and reduce-scatters run in a
 * shard group and every reduce-scatter is followed by the all-reduce of the rank's 1/shardGroup of the
 * gradients across the dp*cp/shardGroup replicas. `spGradSync` (spReplicatedGradCost, over tp) joins the
 * once-per-step reduction. In line (plan.dpCommBlocking), the traffic travels in `inLineBuckets`
 * (inLineBucketCount) where given, else in 25 MiB buckets.
 */
export function dpCosts(plan: Plan, links: Links, params: RankParams, layers: number, spGradSync: CollectiveCost = FREE, inLineBuckets?: number): DpCosts {
  if (plan.parameterServers > 0) return NO_DP;
  const buckets = plan.dpCommBlocking === true && inLineBuckets !== undefined ? inLineBuckets : dpBucketCount(plan, params.dense + params.expert, layers);
  const g = gradientBytesPerParam(plan);
  // [ranks sharing the shard, parameters, their link, replicas of the shard]: dense weights over dp*cp
  // (one shard group of them under hybrid sharding), expert weights over dp*cp/ep.
  const shard = zeroShardRanks(plan);
  const groups: [number, number, EffectiveLink, number][] = [
    [shard, params.dense, links.dp, (plan.dp * plan.cp) / shard],
    [(plan.dp * plan.cp) / plan.ep, params.expert, links.edp, 1],
  ];
  let out = NO_DP;
  for (const [n, count, link, replicas] of groups) {
    if (n <= 1 || count === 0) continue;
    // Hybrid sharding: each rank's reduced shard is then all-reduced across the replicas of that shard
    // (PyTorch FSDP HYBRID_SHARD: an all-reduce over the replicate group after each reduce-scatter).
    const acrossReplicas = replicas > 1 && links.dpReplica !== undefined ? collective("all-reduce", replicas, (g * count) / n, links.dpReplica) : FREE;
    const rs = plus(collective("reduce-scatter", n, g * count, link), acrossReplicas);
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
      buckets,
    };
  }
  // Sequence parallel's once-per-step all-reduce of tp-replicated gradients (spReplicatedGradCost), over tp.
  return spGradSync.bytes > 0 ? { ...out, reduceOnce: plus(out.reduceOnce, spGradSync) } : out;
}

/** The compute a stage's data-parallel traffic can hide behind (per micro-batch, and around the step). */
export interface DpWindows {
  readonly forwardSeconds: number;
  /** Backward with recomputation, per micro-batch. */
  readonly backwardSeconds: number;
  readonly virtualStages: number;
  /** Compute the earlier stages must do before this stage's first forward can start (pipeline fill). */
  readonly fillSeconds: number;
  /** Compute the earlier stages still do after this stage's last backward (pipeline drain). */
  readonly drainSeconds: number;
  /** plan.dpCommExposed: the reduction runs whole after the last pass, the gather whole after the optimizer step. */
  readonly exposed: boolean;
  /** plan.dpCommBlocking: every collective runs in line with the passes, none hidden. */
  readonly blocking: boolean;
}

/**
 * What a transfer of `seconds` in n equal buckets leaves exposed beside a pass of `windowSeconds` split in
 * n pieces, when one bucket must wait for a piece (a reduction starts after its piece, a gather ends before
 * its piece): one bucket's time when the transfer keeps up, otherwise the excess plus one piece.
 */
export function bucketedExposure(seconds: number, windowSeconds: number, buckets: number): number {
  if (seconds <= 0) return 0;
  return Math.max(seconds / buckets, seconds - windowSeconds + windowSeconds / buckets);
}

/**
 * Exposed data-parallel time of one stage, as the event simulator plays it (src/simulator/build-pipeline.ts):
 * the once-per-step gather (ZeRO-1/2) in buckets ahead of each chunk's first forward and the reduction
 * (ZeRO-0/1) in buckets behind its last backward, of which at least the first and the last bucket are
 * exposed; the pipeline's fill and drain hide them on the later stages. Per-micro-batch traffic (ZeRO-2/3)
 * is exposed by what exceeds its pass, plus the step's first ZeRO-3 gather bucket and last reduction bucket.
 * Exposed (plan.dpCommExposed, ZeRO 0/1 only): the whole reduction less the drain, and the whole gather.
 * Blocking (plan.dpCommBlocking): the once-per-step part whole; the per-micro-batch part is in the stage's
 * pass time (StageCost.blockingDpSeconds), where the schedule stretches with it.
 */
export function dpExposedSeconds(c: DpCosts, microBatches: number, w: DpWindows): number {
  if (w.blocking) return c.reduceOnce.seconds + c.gatherOnce.seconds;
  const v = w.virtualStages;
  const n = c.buckets;
  const hide = (cost: CollectiveCost, window: number) => Math.max(0, cost.seconds - window);
  const zero3Gather = c.perMicroBatchForward.seconds;
  const perPassReduce = Math.max(0, c.perMicroBatchBackward.seconds - zero3Gather);
  // Exposed (DeepSpeed): the reduction after the stage's last pass, the gather inside the optimizer step,
  // after the gradient-norm barrier, where nothing hides it.
  if (w.exposed) return Math.max(0, c.reduceOnce.seconds - w.drainSeconds) + c.gatherOnce.seconds;
  const start = bucketedExposure(c.gatherOnce.seconds / v, w.forwardSeconds / v, n) + zero3Gather / (v * n);
  const end = bucketedExposure(c.reduceOnce.seconds / v, w.backwardSeconds / v, n) + perPassReduce / (v * n);
  const steady = microBatches * (hide(c.perMicroBatchForward, w.forwardSeconds) + hide(c.perMicroBatchBackward, w.backwardSeconds));
  return Math.max(0, start - w.fillSeconds) + steady + Math.max(0, end - w.drainSeconds);
}

/**
 * Compute slowed by the data-parallel collectives that run beside it: NCCL's kernels take SMs and HBM
 * bandwidth from the kernels they overlap, which Lee et al. 2025 ("Characterizing Compute-Communication
 * Overlap in GPU-Accelerated Distributed Deep Learning", arXiv:2507.03114, abstract) measured as an average
 * 18.9% slowdown of the overlapped computation on A100, H100, MI250 and MI210 (GpuEfficiency.commOverlapSlowdown).
 * A pass is charged that fraction of the time its collectives overlap it, min(collective, pass): a ZeRO-3
 * gather beside its forward, ZeRO-2/3's backward traffic beside its backward; the once-per-step gather and
 * reduction (ZeRO 0/1, ZeRO-2's gather) are spread over the step's micro-batches' backwards. None when the
 * traffic runs in line with the passes (dpCommBlocking) and none for an exposed once-per-step reduction.
 */
export function dpContention(plan: Plan, c: DpCosts, forwardSeconds: number, backwardSeconds: number, slowdown: number): { forwardSeconds: number; backwardSeconds: number } {
  if (slowdown === 0 || plan.dpCommBlocking === true) return { forwardSeconds: 0, backwardSeconds: 0 };
  const once = plan.dpCommExposed === true ? 0 : (c.reduceOnce.seconds + c.gatherOnce.seconds) / microBatchCount(plan);
  return {
    forwardSeconds: slowdown * Math.min(c.perMicroBatchForward.seconds, forwardSeconds),
    backwardSeconds: slowdown * Math.min(c.perMicroBatchBackward.seconds + once, backwardSeconds),
  };
}

export function dpBytes(c: DpCosts, microBatches: number): number {
  return c.reduceOnce.bytes + c.gatherOnce.bytes + microBatches * (c.perMicroBatchForward.bytes + c.perMicroBatchBackward.bytes);
}
