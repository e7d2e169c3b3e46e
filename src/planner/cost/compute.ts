import type { GpuSpec, ModelSpec, Plan, VPassRatios } from "../../spec/types.js";
import { headDimAligned } from "../../spec/alignment.js";
import { microBatchCount } from "../../spec/plan.js";
import { attentionWidthsPerRank, BYTES_16 } from "./activations.js";
import { attentionLengthFactor } from "./attention-length.js";
import { efficiencyGrid, gridEfficiency, type EfficiencyGrid } from "./gemm-grid.js";
import { gradientBytesPerParam } from "./memory.js";
import { moeRoutingTimes } from "./moe-routing.js";
import { fittedVPassRatios, vPassRatios } from "./zb-v.js";

/**
 * Time of one layer's forward and backward on one GPU for one micro-batch, from a roofline per kernel:
 * a GEMM takes max(flops / (peak * matmulMax) + overhead, bytes / (HBM * memoryBandwidth)) (fp8 layer
 * GEMMs at the fp8 peak times fp8MatmulMax); fused attention runs at attentionMax of the 16-bit peak, less at short
 * sequences and under the causal mask (attention-length.ts); element-wise kernels (norms, residual adds, activation
 * functions, dropout, rotary embedding, unfused softmax) are bound by HBM traffic. The efficiency
 * constants are per GPU, with their sources, in models/hardware/gpus/*.json. A GPU with measured figures
 * (GpuSpec.measured) has its GEMMs follow the measured grid instead of the fixed cost (gemm-grid.ts), and
 * its fused attention the measured kernel's length curve.
 */
export interface LayerTimes {
  readonly forwardSeconds: number;
  /** Input-gradient part of the backward (ZB-H1's B). */
  readonly backwardInputSeconds: number;
  /** Weight-gradient part of the backward (ZB-H1's W). */
  readonly backwardWeightSeconds: number;
  /** Extra forward work for selective recomputation (attention core), per layer. */
  readonly selectiveRecomputeSeconds: number;
  /** The attention core's forward alone (for context-parallel overlap). */
  readonly attentionCoreForwardSeconds: number;
  /**
   * Forward time of each column-parallel GEMM (QKV, and the MLP's first matrix when it is dense): the
   * backward's input- and weight-gradient GEMMs of each have the same FLOPs, and Megatron-LM hides the
   * linear's tensor-parallel backward collectives behind them (tpCostPerMicroBatch).
   */
  readonly columnGemmSeconds: readonly number[];
  /**
   * The layer's last product (the MLP's down projection; under MoE, the local experts'), whose output
   * nothing saves for the backward: a recomputation that stops once every saved tensor is back
   * (Plan.recomputeEarlyStop) does not run it again.
   */
  readonly lastGemmSeconds: number;
  /**
   * What the layer's GEMM weights cost at the first forward that uses new weight tensors (GpuEfficiency
   * weightFirstUseSecondsPerParam): once per step, or every forward under ZeRO 3 (stages.ts). 0 on GPUs.
   */
  readonly firstUseSeconds: number;
}

/** The first use of new weight tensors: seconds per parameter (GpuEfficiency) times the GEMM weights. */
function firstUseSeconds(gpu: GpuSpec, weights: number): number {
  return (gpu.efficiency.weightFirstUseSecondsPerParam ?? 0) * weights;
}

export interface HeadTimes {
  readonly forwardSeconds: number;
  readonly backwardSeconds: number;
  /** The output projection's weights at their first use (LayerTimes.firstUseSeconds). */
  readonly firstUseSeconds: number;
  /** The output projection's GEMM alone, one pass (a column-parallel linear over the vocabulary). */
  readonly projectionSeconds: number;
}

/**
 * Backward of an element-wise kernel reads the saved input and the incoming gradient and writes one
 * gradient (three passes) where the forward reads one tensor and writes one (two passes): 1.5x the traffic.
 */
const ELEMENTWISE_BACKWARD_RATIO = 1.5;
/**
 * Flash attention's backward does 5 matrix products against the forward's 2, recomputing the scores
 * (Dao 2023, FlashAttention-2, section 3.1.2): 2.5x the forward FLOPs.
 */
export const FLASH_BACKWARD_RATIO = 2.5;
/**
 * With a causal mask a fused kernel skips the blocks above the diagonal, about half the square
 * (Dao 2023, FlashAttention-2, section 3.1.1, "causal masking").
 */
const CAUSAL_FRACTION = 0.5;

export function peakFlops(gpu: GpuSpec, plan: Plan): number {
  const peak = gpu.peakFlopsPerSecond[plan.precision];
  if (peak === undefined) throw new Error(`internal: ${gpu.name} has no ${plan.precision} peak (resolvePlan checks this)`);
  return peak;
}

/**
 * The 16-bit peak, at which attention and the output layer run even in an fp8 plan: Transformer Engine's
 * fp8 recipe applies to its Linear layers and leaves attention in 16-bit unless fp8 attention is asked
 * for (TE docs, "Using FP8 with Transformer Engine"); Megatron-LM's output layer is not a TE module, and
 * torchtitan's float8 conversion skips the output projection (its `filter_fqns` default, ["output"]).
 */
export function peak16Flops(gpu: GpuSpec, plan: Plan): number {
  return gpu.peakFlopsPerSecond.bf16 ?? gpu.peakFlopsPerSecond.fp16 ?? peakFlops(gpu, plan);
}

/**
 * How fast a GEMM runs: peak times the fraction a large GEMM reaches, bytes per input element, and either
 * a fixed cost per GEMM or the GPU's measured grid (whose small products carry their own fixed cost).
 */
interface GemmRate {
  readonly flopsPerSecond: number;
  readonly overheadSeconds: number;
  readonly inputBytes: number;
  readonly grid: EfficiencyGrid | undefined;
}

/** The transformer layers' linear GEMMs: fp8 at the fp8 figures (default: the 16-bit fraction), else 16-bit. */
function layerGemmRate(gpu: GpuSpec, plan: Plan): GemmRate {
  const e = gpu.efficiency;
  if (plan.precision !== "fp8") return gemm16Rate(gpu, plan);
  const peak = peakFlops(gpu, plan);
  const measured = gpu.measured?.gemmFp8;
  return {
    flopsPerSecond: peak * (e.fp8MatmulMax ?? e.matmulMax), overheadSeconds: e.matmulOverheadSeconds, inputBytes: 1,
    grid: measured === undefined ? undefined : efficiencyGrid(measured, peak),
  };
}

function gemm16Rate(gpu: GpuSpec, plan: Plan): GemmRate {
  const e = gpu.efficiency;
  const peak = peak16Flops(gpu, plan);
  const measured = gpu.measured?.gemm16;
  return {
    flopsPerSecond: peak * e.matmulMax, overheadSeconds: e.matmulOverheadSeconds, inputBytes: BYTES_16,
    grid: measured === undefined ? undefined : efficiencyGrid(measured, peak),
  };
}

/** The rate the unfused attention's misaligned products are charged, and where it comes from. */
export interface MisalignedAttentionRate {
  readonly flopsPerSecond: number;
  /** "measured": this GPU's alignment measurement at `headDim`; "fp32": its CUDA-core fp32 peak. */
  readonly from: "measured" | "fp32";
  /** The measured head dimension the rate is taken from (the nearest in log scale). */
  readonly headDim?: number;
}

/**
 * The unfused attention's batched products (Megatron's baddbmm/bmm) read q, k and v as views into the
 * fused QKV output, each head's slice starting headDim elements after the previous one: with a head
 * dimension that is not a multiple of 8 (16 bytes), the operands are misaligned for the tensor-core
 * kernels. On a GPU whose measurement file has the alignment section (scripts/gpu/measure.py), they are
 * charged the measured rate of the nearest measured misaligned head dimension (log scale), taken relative
 * to the measured GEMM grid's plateau and set at the GPU's matmulMax level as the grid's products are:
 * on an H100 with CUDA 13's cuBLAS they ran at 87-186 TFLOP/s, 0.2-0.5 of their aligned neighbours
 * (models/hardware/measured/README.md). Elsewhere they are charged the GPU's CUDA-core fp32 rate (its
 * datasheet `fp32` peak) times the same matmulMax fraction: BLOOM's candidates at head dimensions 108, 150
 * and 450 ran 28-44% slower on A100s in 2022 than the model without this (models/measurements/
 * bloom-176b.jsonl, README "Accuracy"), the fp16 and bf16 rows alike, as a CUDA-core kernel accumulating in
 * fp32 would. Undefined where the products run on the tensor cores (fused, aligned, or a GPU with neither
 * figure). The products' fixed cost is the flat model's matmulOverheadSeconds, also on a GPU with a
 * measured grid (the grid measured the aligned kernels only).
 */
export function misalignedAttentionRate(gpu: GpuSpec, plan: Plan, headDim: number): MisalignedAttentionRate | undefined {
  if (plan.flashAttention || headDimAligned(headDim)) return undefined;
  const measured = gpu.measured?.misalignedAttention;
  if (measured !== undefined) {
    const distance = (d: number) => Math.abs(Math.log(d / headDim));
    const i = measured.headDims.reduce((best, d, j) => (distance(d) < distance(measured.headDims[best]!) ? j : best), 0);
    const relative = measured.flopsPerSecond[i]! / gpu.measured!.gemm16.plateauFlopsPerSecond;
    return { flopsPerSecond: relative * peak16Flops(gpu, plan) * gpu.efficiency.matmulMax, from: "measured", headDim: measured.headDims[i]! };
  }
  const fp32 = gpu.peakFlopsPerSecond.fp32;
  return fp32 === undefined ? undefined : { flopsPerSecond: fp32 * gpu.efficiency.matmulMax, from: "fp32" };
}

function gemmSeconds(gpu: GpuSpec, rate: GemmRate, m: number, k: number, n: number): number {
  const flops = 2 * m * k * n;
  const bytes = rate.inputBytes * (m * k + k * n) + BYTES_16 * m * n;
  const compute = rate.grid === undefined
    ? flops / rate.flopsPerSecond + rate.overheadSeconds
    : (flops * rate.grid.plateau) / (rate.flopsPerSecond * gridEfficiency(rate.grid, m, k, n));
  return Math.max(compute, bytes / (gpu.hbmBytesPerSecond * gpu.efficiency.memoryBandwidth));
}

/** Seconds to stream `bytes` at `fraction` of the GPU's HBM bandwidth (default: its element-wise fraction). */
function streamSeconds(gpu: GpuSpec, bytes: number, fraction = gpu.efficiency.memoryBandwidth): number {
  return bytes / (gpu.hbmBytesPerSecond * fraction);
}

/**
 * Bytes per element that fp8 casting streams: a per-tensor scaled cast reads the 16-bit tensor for its
 * amax and again to scale it, and writes one byte (Micikevicius et al. 2022, "FP8 Formats for Deep
 * Learning", section 4; Transformer Engine casts each Linear's input forward and its output gradient
 * backward): 2 + 2 + 1 = 5 bytes per element.
 */
const FP8_CAST_BYTES = 5;

export function layerTimes(model: ModelSpec, gpu: GpuSpec, plan: Plan): LayerTimes {
  const rate = layerGemmRate(gpu, plan);
  const rate16 = gemm16Rate(gpu, plan);
  const t = plan.tp;
  const r = plan.sequenceParallel ? t : 1;
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  const { q, kv } = attentionWidthsPerRank(model, t);
  const f = model.ffnHiddenSize / t;
  const heads = model.attentionHeads / t;
  const moe = model.moe;
  const k = moe?.topK ?? 1;
  const up = model.mlp === "swiglu" ? 2 : 1;

  // Linear layers (forward). MoE: each of E/ep local experts gets x*k*ep/E tokens on average.
  const qkv = gemmSeconds(gpu, rate, x, h, q + 2 * kv);
  const columnGemmSeconds = [qkv];
  let linear = qkv + gemmSeconds(gpu, rate, x, q, h);
  let lastGemmSeconds: number;
  // The GEMMs' weight elements on this rank (firstUseSeconds).
  let weights = h * (q + 2 * kv) + q * h;
  if (moe === undefined) {
    const fc1 = gemmSeconds(gpu, rate, x, h, up * f);
    columnGemmSeconds.push(fc1);
    lastGemmSeconds = gemmSeconds(gpu, rate, x, f, h);
    linear += fc1 + lastGemmSeconds;
    weights += (up + 1) * h * f;
  } else {
    const local = moe.experts / plan.ep;
    const tokens = (x * k * plan.ep) / moe.experts;
    lastGemmSeconds = local * gemmSeconds(gpu, rate, tokens, f, h);
    linear += local * gemmSeconds(gpu, rate, tokens, h, up * f) + lastGemmSeconds;
    linear += gemmSeconds(gpu, rate16, x, h, moe.experts);
    weights += local * (up + 1) * h * f + h * moe.experts;
  }

  // Attention core: Q K^T and P V over the full key length (keys arrive over the cp ring).
  const coreFlops = 2 * 2 * x * plan.seqLen * q;
  let coreForward: number;
  let coreBackward: number;
  let softmaxElements = 0;
  if (plan.flashAttention) {
    const attentionFlopsPerSecond = peak16Flops(gpu, plan) * gpu.efficiency.attentionMax * attentionLengthFactor(plan.seqLen, plan.cp, gpu.measured?.attention);
    coreForward = (coreFlops * CAUSAL_FRACTION) / attentionFlopsPerSecond;
    coreBackward = FLASH_BACKWARD_RATIO * coreForward;
  } else {
    const misaligned = misalignedAttentionRate(gpu, plan, model.headDim);
    const coreRate: GemmRate = misaligned === undefined
      ? rate16
      : { flopsPerSecond: misaligned.flopsPerSecond, overheadSeconds: gpu.efficiency.matmulOverheadSeconds, inputBytes: BYTES_16, grid: undefined };
    coreForward = 2 * gemmSeconds(gpu, coreRate, x * heads, plan.seqLen, model.headDim);
    coreBackward = 2 * coreForward;
    // scale + mask + softmax read and write the scores; dropout reads, writes and writes its mask.
    softmaxElements = heads * x * plan.seqLen * (2 + (model.dropout ? 2.5 : 0));
  }

  // Element-wise traffic per token (elements): two norms (read+write h), two residual adds (2 reads, 1 write),
  // activation function (GeLU: f in, f out; SwiGLU: 2f in, f out), dropout on two branches, rotary on q and k.
  const perToken =
    (2 * 2 * h + 2 * 3 * h + (model.dropout ? 2 * 2.5 * h : 0)) / r +
    k * (up + 1) * f +
    (model.positionEmbedding === "rope" ? 2 * (q + kv) : 0);
  const softmaxSeconds = streamSeconds(gpu, BYTES_16 * softmaxElements);
  const elementwise = streamSeconds(gpu, BYTES_16 * x * perToken) + softmaxSeconds;
  // fp8: cast the GEMM inputs forward (h, q, h, k*f per token) and the output gradients backward (q + 2kv, h, k*up*f, h).
  const fp8 = plan.precision === "fp8";
  const castForward = fp8 ? streamSeconds(gpu, FP8_CAST_BYTES * x * ((2 * h) / r + q + k * f)) : 0;
  const castBackward = fp8 ? streamSeconds(gpu, FP8_CAST_BYTES * x * (q + 2 * kv + (2 * h) / r + k * up * f)) : 0;

  const passes = splitPasses(gpu, {
    forwardSeconds: linear + coreForward + elementwise + castForward,
    backwardInputSeconds: linear + coreBackward + ELEMENTWISE_BACKWARD_RATIO * elementwise + castBackward,
    backwardWeightSeconds: linear,
  });
  // A mixture of experts' routing, priced on its own (moe-routing.ts), after the split: measured pass
  // shares are a dense layer's.
  const routing = moeRoutingTimes(model, gpu, plan);
  return {
    ...passes,
    forwardSeconds: passes.forwardSeconds + routing.forwardSeconds,
    backwardInputSeconds: passes.backwardInputSeconds + routing.backwardSeconds,
    // Selective recomputation redoes the attention core: QK^T, softmax, its dropout and the product with V
    // (Korthikanti et al. 2022, section 4.2), the memory-bound softmax and dropout included.
    selectiveRecomputeSeconds: plan.recompute === "selective" && !plan.flashAttention ? coreForward + softmaxSeconds : 0,
    attentionCoreForwardSeconds: coreForward,
    columnGemmSeconds,
    lastGemmSeconds,
    firstUseSeconds: firstUseSeconds(gpu, weights),
  };
}

type LayerPasses = Pick<LayerTimes, "forwardSeconds" | "backwardInputSeconds" | "backwardWeightSeconds">;

/** The three passes as the roofline prices them, or their total split by the GPU's measured shares. */
function splitPasses(gpu: GpuSpec, p: LayerPasses): LayerPasses {
  const shares = gpu.efficiency.layerPassShares;
  if (shares === undefined) return p;
  const total = p.forwardSeconds + p.backwardInputSeconds + p.backwardWeightSeconds;
  return { forwardSeconds: total * shares.forward, backwardInputSeconds: total * shares.backwardInput, backwardWeightSeconds: total * shares.backwardWeight };
}

/**
 * ZB-V's pass lengths as this GPU prices them (layerTimes): a layer's B, with what the plan's recompute
 * mode runs again before it (full: the forward; selective: the attention core), and its W, each in units
 * of its forward, rounded to quarters as zb-v.ts rounds them. Where element-wise work or fixed costs weigh
 * (small layers; the executor's TensorFlow.js passes, whose B is about twice its F) they differ from the
 * FLOP ratios (zb-v.ts planVPassRatios), and an order found for the wrong lengths idles. Where the GPU's
 * passes are measured (efficiency.layerPassShares: the executor's profile) the quarters are those whose
 * order runs the measured lengths soonest (zb-v.ts fittedVPassRatios; tiny-gpt-4 on 2 stages measured a
 * bubble of 0.055-0.133 with it against 0.10-0.21 with the nearest quarters). Where the roofline prices
 * them, the nearest: the replay that fitting compares leaves out transfers and the end stages, and on
 * Llama 3 70B over 64 H100s it chose orders the simulator then found 0.1% slower, for a pinned ZB-V
 * search 1.7 times as long.
 */
export function pricedVPassRatios(model: ModelSpec, gpu: GpuSpec, plan: Plan): VPassRatios {
  const t = layerTimes(model, gpu, plan);
  const recompute = plan.recompute === "full" ? t.forwardSeconds : t.selectiveRecomputeSeconds;
  const [f, b, w] = [t.forwardSeconds, t.backwardInputSeconds + recompute, t.backwardWeightSeconds];
  return gpu.efficiency.layerPassShares === undefined ? vPassRatios(f, b, w) : fittedVPassRatios(plan.pp, microBatchCount(plan), f, b, w);
}

/**
 * A ZB-V plan with its order found for the passes as `gpu` prices them, unless it gives its own lengths
 * (`--zbv-passes`); any other plan as it is. What plan, simulate, the explorer and execute (on its
 * profile's GPU) run ZB-V with.
 */
export function withPricedVPasses(model: ModelSpec, gpu: GpuSpec, plan: Plan): Plan {
  if (plan.schedule !== "zb-v" || plan.vPassRatios !== undefined) return plan;
  return { ...plan, vPassRatios: pricedVPassRatios(model, gpu, plan) };
}

/**
 * Bytes per logit that the vocabulary-parallel cross-entropy streams each way: it reads the 16-bit logits
 * and makes fp32 copies, read 2 + write 4 + read 4 + write 4 forward, the same again backward.
 */
export const LOSS_BYTES_PER_LOGIT = 14;

/**
 * The output layer and the loss on the last stage: the h x V/tp projection (forward, then input and weight
 * gradients) and the cross-entropy's LOSS_BYTES_PER_LOGIT each way, at the GPU's loss bandwidth and with its
 * fixed loss time where given (the executor's profile measures its own cross-entropy), else at its
 * element-wise rate.
 */
export function headTimes(model: ModelSpec, gpu: GpuSpec, plan: Plan): HeadTimes {
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const vocab = model.vocabSize / plan.tp;
  const proj = gemmSeconds(gpu, gemm16Rate(gpu, plan), x, model.hiddenSize, vocab);
  const e = gpu.efficiency;
  const loss = (e.lossOverheadSeconds ?? 0) + streamSeconds(gpu, LOSS_BYTES_PER_LOGIT * x * vocab, e.lossBandwidth ?? e.memoryBandwidth);
  return { forwardSeconds: proj + loss, backwardSeconds: 2 * proj + loss, projectionSeconds: proj, firstUseSeconds: firstUseSeconds(gpu, model.hiddenSize * vocab) };
}

export interface EmbeddingTimes {
  readonly forwardSeconds: number;
  /** The table's gradient: a weight gradient (ZB-H1's W). */
  readonly backwardSeconds: number;
}

/** The input embedding's memory traffic per micro-batch (embeddingTimes' accounting), forward and backward. */
export interface EmbeddingBytes {
  readonly forwardBytes: number;
  readonly backwardBytes: number;
}

/**
 * The input embedding on the first stage, bound by memory traffic (16-bit activations). Forward: the
 * lookup reads and writes x rows of h, and a learned position embedding's add reads two and writes one.
 * Backward: the frameworks materialise the table's dense gradient, V/tp x h: PyTorch's
 * embedding_dense_backward zero-fills it and adds the x incoming rows in (aten/src/ATen/native/
 * Embedding.cpp), TensorFlow.js's gather gradient is an unsortedSegmentSum of the same shape; the result
 * is then added into the accumulated gradient (Megatron's main_grad, 4 bytes with fp32 gradients):
 * write 2, then read 2 + read g + write g bytes per table element, besides reading the x incoming rows.
 */
export function embeddingBytes(model: ModelSpec, plan: Plan): EmbeddingBytes {
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  const rows = x * h * BYTES_16;
  const position = model.positionEmbedding === "learned";
  const table = (model.vocabSize / plan.tp) * h;
  const g = gradientBytesPerParam(plan);
  // A norm after the embedding (ModelSpec.embeddingNorm): read and write the rows, its backward 1.5x.
  const norm = model.embeddingNorm === true ? 2 * rows : 0;
  return {
    forwardBytes: 2 * rows + (position ? 3 * rows : 0) + norm,
    backwardBytes: rows + table * (BYTES_16 + BYTES_16 + 2 * g) + (position ? rows + plan.seqLen * h * (BYTES_16 + BYTES_16 + 2 * g) : 0) + ELEMENTWISE_BACKWARD_RATIO * norm,
  };
}

/**
 * The embedding's passes (embeddingBytes) at the GPU's element-wise rate; where the GPU gives the
 * embedding's own rate and fixed time per pass (the executor's profile, which times its own embedding:
 * a one-hot product forward and its transpose backward, a few TensorFlow.js calls whose table-sized
 * gradient streams far faster than the layers' many small kernels), at those.
 */
export function embeddingTimes(model: ModelSpec, gpu: GpuSpec, plan: Plan): EmbeddingTimes {
  const b = embeddingBytes(model, plan);
  const e = gpu.efficiency;
  const fixed = e.embeddingOverheadSeconds ?? 0;
  const rate = e.embeddingBandwidth ?? e.memoryBandwidth;
  return { forwardSeconds: fixed + streamSeconds(gpu, b.forwardBytes, rate), backwardSeconds: fixed + streamSeconds(gpu, b.backwardBytes, rate) };
}
