import type { ModelSpec } from "../../spec/types.js";

/**
 * Parameter counts, by counting every weight matrix, bias and norm of a decoder-only transformer
 * (GPT-2/3 with learned positions and a plain MLP; Llama-style with RoPE, GQA and SwiGLU; Mixtral MoE).
 * Checked against published totals in test/planner/params.test.ts.
 */
export interface LayerParams {
  /** Q, K, V and output projections with their biases. */
  readonly attention: number;
  /** One expert's (or the dense) MLP, with biases. */
  readonly mlpPerExpert: number;
  readonly experts: number;
  /** MoE router (h x E); 0 for dense models. */
  readonly router: number;
  /** The layer's two norms. */
  readonly norms: number;
}

export function normParams(model: ModelSpec): number {
  // LayerNorm has a scale and a bias per channel; RMSNorm only a scale (Zhang & Sennrich 2019).
  return model.norm === "layernorm" ? 2 * model.hiddenSize : model.hiddenSize;
}

/** Number of weight matrices in one MLP: SwiGLU has gate, up and down (Shazeer 2020); a plain MLP two. */
export function mlpMatrices(model: ModelSpec): number {
  return model.mlp === "swiglu" ? 3 : 2;
}

export function layerParams(model: ModelSpec): LayerParams {
  const h = model.hiddenSize;
  const qDim = model.attentionHeads * model.headDim;
  const kvDim = model.kvHeads * model.headDim;
  const attnWeights = h * qDim + 2 * h * kvDim + qDim * h;
  const attnBias = model.linearBias ? qDim + 2 * kvDim + h : model.qkvBias ? qDim + 2 * kvDim : 0;
  const f = model.ffnHiddenSize;
  const mlpWeights = mlpMatrices(model) * h * f;
  const mlpBias = model.linearBias ? (mlpMatrices(model) - 1) * f + h : 0;
  const experts = model.moe?.experts ?? 1;
  return {
    attention: attnWeights + attnBias,
    mlpPerExpert: mlpWeights + mlpBias,
    experts,
    router: model.moe === undefined ? 0 : h * experts,
    norms: 2 * normParams(model),
  };
}

export function layerTotal(lp: LayerParams): number {
  return lp.attention + lp.mlpPerExpert * lp.experts + lp.router + lp.norms;
}

/** The input embedding: the token table, a learned position table and a norm after them, where the model has them. */
export function embeddingParams(model: ModelSpec): number {
  const positions = model.positionEmbedding === "learned" ? model.seqLen * model.hiddenSize : 0;
  return model.vocabSize * model.hiddenSize + positions + (model.embeddingNorm === true ? normParams(model) : 0);
}

/** The output projection (absent when tied to the input embedding) plus the final norm. */
export function headParams(model: ModelSpec): number {
  return (model.tiedEmbeddings ? 0 : model.vocabSize * model.hiddenSize) + normParams(model);
}

export function totalParams(model: ModelSpec): number {
  return embeddingParams(model) + model.layers * layerTotal(layerParams(model)) + headParams(model);
}

/** Parameters a token touches: MoE tokens visit topK experts only. */
export function activeParams(model: ModelSpec): number {
  const lp = layerParams(model);
  const k = model.moe?.topK ?? 1;
  const perLayer = lp.attention + lp.mlpPerExpert * k + lp.router + lp.norms;
  return embeddingParams(model) + model.layers * perLayer + headParams(model);
}
