import type { ModelSpec, Plan } from "../../spec/types.js";
import { mlpMatrices } from "./params.js";

/**
 * Forward FLOPs per token, counting each matrix product as 2*m*n*k (a multiply and an add).
 * For a GPT with MHA, a 4h plain MLP and no biases this gives Narayanan et al. 2021 (SC'21, eq. 3):
 * 72*B*s*l*h^2*(1 + s/(6h) + V/(12*l*h)) per training step; attention scores are counted over the
 * full s x s square as that paper does (the causal mask is not subtracted).
 */
export interface ForwardFlopsPerToken {
  /** Q, K, V and output projections of one layer. */
  readonly attentionLinear: number;
  /** Q K^T and the probability-weighted sum over V, for one layer, at context seqLen. */
  readonly attentionCore: number;
  /** The MLP (topK experts for MoE) and router of one layer. */
  readonly mlp: number;
  /** The output (logits) projection, once per token. */
  readonly logits: number;
}

export function forwardFlopsPerToken(model: ModelSpec, seqLen: number): ForwardFlopsPerToken {
  const h = model.hiddenSize;
  const qDim = model.attentionHeads * model.headDim;
  const kvDim = model.kvHeads * model.headDim;
  const k = model.moe?.topK ?? 1;
  const router = model.moe === undefined ? 0 : 2 * h * model.moe.experts;
  return {
    attentionLinear: 2 * (h * qDim + 2 * h * kvDim + qDim * h),
    attentionCore: 2 * 2 * seqLen * qDim,
    mlp: 2 * mlpMatrices(model) * h * model.ffnHiddenSize * k + router,
    logits: 2 * h * model.vocabSize,
  };
}

export function layerForwardFlopsPerToken(f: ForwardFlopsPerToken): number {
  return f.attentionLinear + f.attentionCore + f.mlp;
}

export interface StepFlops {
  /** Forward plus backward (twice the forward), no recomputation: what MFU counts (Chowdhery et al. 2022, appendix B). */
  readonly modelFlops: number;
  /** Model FLOPs plus the recomputed forward passes: what HFU counts (Korthikanti et al. 2022, section 6). */
  readonly hardwareFlops: number;
}

/** FLOPs of one training step over the whole cluster. */
export function stepFlops(model: ModelSpec, plan: Plan): StepFlops {
  const tokens = plan.globalBatch * plan.seqLen;
  const f = forwardFlopsPerToken(model, plan.seqLen);
  const layer = layerForwardFlopsPerToken(f);
  const modelFlops = 3 * tokens * (model.layers * layer + f.logits);
  const fullLayers = plan.recomputeLayersPerStage.reduce((a, b) => a + b, 0);
  const otherLayers = model.layers - fullLayers;
  // Selective recomputation re-runs the attention core only (Korthikanti et al. 2022, section 4.2);
  // with flash attention nothing extra is recomputed on top of what the fused kernel does itself.
  const selective = plan.recompute === "selective" && !plan.flashAttention ? otherLayers * f.attentionCore : 0;
  const recomputed = tokens * (fullLayers * layer + selective);
  return { modelFlops, hardwareFlops: modelFlops + recomputed };
}

/**
 * The share of the model FLOPs (stepFlops) that a causal mask skips: half of the attention core, which
 * the count takes over the full s x s square (Narayanan et al. 2021, as Megatron-LM logs it) while causal
 * attention kernels compute about half of it (FlashAttention-2, Dao 2023, section 3.1.1: blocks above the
 * diagonal are skipped). MFU times (1 - share) is the utilisation over the FLOPs that run.
 */
export function causalSkippedShare(model: ModelSpec, plan: Plan): number {
  const f = forwardFlopsPerToken(model, plan.seqLen);
  return (model.layers * f.attentionCore / 2) / (model.layers * layerForwardFlopsPerToken(f) + f.logits);
}
