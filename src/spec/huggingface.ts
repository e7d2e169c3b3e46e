import { InputError } from "./errors.js";
import { FieldReader, MODEL_COUNT, MODEL_SIZE, readKvHeads } from "./read.js";
import type { ModelSpec } from "./types.js";

/** Hugging Face `model_type` values whose config.json field names this importer knows. */
export const HF_MODEL_TYPES = ["llama", "mistral", "mixtral", "qwen2", "gpt2", "gpt_neox"] as const;
type HfModelType = (typeof HF_MODEL_TYPES)[number];

/**
 * The default training length for an imported config: its max_position_embeddings, capped at
 * 8192 because long-context models are mostly pre-trained shorter and extended later
 * (Llama 3 paper, section 3.4.2: pre-training at 8K, long-context stage after). Override with --seq.
 */
const DEFAULT_SEQ_CAP = 8192;

/**
 * The default sequence of an imported config, at most DEFAULT_SEQ_CAP (and the sliding window, where one
 * applies), and when that is shorter than the config's positions, the sentence that says so.
 */
function defaultSeq(positionsField: string, positions: number, window?: number): { seqLen: number; defaultSeqNote?: string } {
  const seqLen = Math.min(positions, DEFAULT_SEQ_CAP, window ?? positions);
  if (seqLen === positions) return { seqLen };
  const why = seqLen === window ? `its sliding_window (attention is full within it)` : `capped at ${DEFAULT_SEQ_CAP}: long-context models mostly pre-train shorter and extend later (Llama 3: 8K, then a long-context stage)`;
  return { seqLen, defaultSeqNote: `sequence ${seqLen} tokens by default, not ${positionsField} ${positions}: ${why}; --seq sets it` };
}

export function isHuggingFaceConfig(json: unknown): boolean {
  return typeof json === "object" && json !== null && "model_type" in json;
}

/** Field names that only a Hugging Face config.json uses (meshplan's model JSON spells them in camelCase). */
const HF_ONLY_FIELDS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "n_embd", "n_layer", "n_head"];

/**
 * A file that reads like a Hugging Face config.json but has no model_type would be read as a meshplan
 * model and fail on a camelCase field the user never meant to write: name model_type instead.
 */
export function checkLooksLikeHuggingFace(json: unknown, file: string): void {
  if (typeof json !== "object" || json === null || Array.isArray(json) || "model_type" in json) return;
  const hf = HF_ONLY_FIELDS.filter((k) => k in json);
  if (hf.length === 0 || "hiddenSize" in json) return;
  throw new InputError({
    code: "missing-field", field: "model_type", value: undefined, file, valid: HF_MODEL_TYPES.join(", "),
    reason: `the file has Hugging Face fields (${hf.join(", ")}) but no model_type, which says how to read them`,
  });
}

/** Converts a Hugging Face config.json (parsed) into a meshplan model. */
export function fromHuggingFaceConfig(json: unknown, file: string, fallbackName: string): ModelSpec {
  const r = FieldReader.of(json, file);
  const modelType = r.oneOf<HfModelType>("model_type", HF_MODEL_TYPES);
  const name = fallbackName;
  const source = `Hugging Face config.json (${modelType}) at ${file}`;
  if (modelType === "gpt2") return fromGpt2(r, name, source);
  if (modelType === "gpt_neox") return fromNeox(r, name, source);
  return fromLlamaFamily(r, modelType, name, source);
}

function fromLlamaFamily(r: FieldReader, modelType: HfModelType, name: string, source: string): ModelSpec {
  const hiddenSize = r.number("hidden_size", MODEL_SIZE);
  const attentionHeads = r.number("num_attention_heads", MODEL_COUNT);
  const kvHeads = readKvHeads(r, "num_key_value_heads", "num_attention_heads", attentionHeads);
  const headDim = r.optionalNumber("head_dim", MODEL_SIZE) ?? exactDiv(r, hiddenSize, attentionHeads);
  const act = r.optionalString("hidden_act") ?? "silu";
  if (act !== "silu" && act !== "swish") {
    throw new InputError({ code: "unsupported", file: r.file, field: "hidden_act", value: act, valid: "silu (a gated SwiGLU MLP)" });
  }
  const experts = modelType === "mixtral" ? r.number("num_local_experts", MODEL_COUNT) : undefined;
  // LlamaConfig's attention_bias (q, k, v and o projections) and mlp_bias (gate, up, down), both off by
  // default. The model spec has q/k/v biases alone (qkvBias) or biases on every linear layer (linearBias):
  // what does not map exactly is said in the source line (an o_proj bias, h per layer, or attention biases
  // counted with the MLP's: each a few h per layer, against 12 h^2 of weights).
  const attentionBias = r.boolean("attention_bias", false);
  const mlpBias = r.boolean("mlp_bias", false);
  // Mistral's sliding_window: each position attends to at most that many before it, which the cost
  // model does not represent; up to the window attention is full, so the default sequence stops there
  // (Qwen2's configs carry a window with use_sliding_window false).
  const positions = r.number("max_position_embeddings", MODEL_SIZE);
  const usual = Math.min(positions, DEFAULT_SEQ_CAP);
  const window = r.raw("use_sliding_window") === false ? undefined : r.optionalNumber("sliding_window", MODEL_SIZE);
  const seq = defaultSeq("max_position_embeddings", positions, window);
  const windowNote = window !== undefined && window < usual
    ? `; sliding_window ${window}: the default sequence is the window, within which attention is full (a longer --seq is counted as full attention)` : "";
  const biasNote = attentionBias && !mlpBias ? "; attention_bias: its o_proj bias (hidden_size per layer) is not counted"
    : mlpBias && !attentionBias ? "; mlp_bias: counted with attention biases as well (linearBias)" : "";
  return {
    name,
    displayName: name,
    layers: r.number("num_hidden_layers", MODEL_COUNT),
    hiddenSize,
    attentionHeads,
    kvHeads,
    headDim,
    ffnHiddenSize: r.number("intermediate_size", MODEL_SIZE),
    mlp: "swiglu",
    norm: "rmsnorm",
    vocabSize: r.number("vocab_size", MODEL_SIZE),
    tiedEmbeddings: r.boolean("tie_word_embeddings", false),
    positionEmbedding: "rope",
    linearBias: mlpBias,
    qkvBias: modelType === "qwen2" || attentionBias,
    dropout: (r.optionalNumber("attention_dropout", { min: 0 }) ?? 0) > 0,
    ...seq,
    globalBatch: undefined,
    moe: experts === undefined ? undefined : { experts, topK: r.number("num_experts_per_tok", { integer: true, min: 1, max: experts }) },
    publishedParameters: undefined,
    source: source + biasNote + windowNote,
  };
}

function fromGpt2(r: FieldReader, name: string, source: string): ModelSpec {
  const hiddenSize = r.number("n_embd", MODEL_SIZE);
  const attentionHeads = r.number("n_head", MODEL_COUNT);
  const positions = r.number("n_positions", MODEL_SIZE);
  return {
    name,
    displayName: name,
    layers: r.number("n_layer", MODEL_COUNT),
    hiddenSize,
    attentionHeads,
    kvHeads: attentionHeads,
    headDim: exactDiv(r, hiddenSize, attentionHeads),
    // GPT-2's n_inner is null for the default 4 x n_embd (transformers GPT2Config docs).
    ffnHiddenSize: r.optionalNumber("n_inner", MODEL_SIZE) ?? 4 * hiddenSize,
    mlp: "gelu",
    norm: "layernorm",
    vocabSize: r.number("vocab_size", MODEL_SIZE),
    tiedEmbeddings: r.boolean("tie_word_embeddings", true),
    positionEmbedding: "learned",
    linearBias: true,
    qkvBias: false,
    dropout: (r.optionalNumber("resid_pdrop", { min: 0 }) ?? 0) > 0,
    ...defaultSeq("n_positions", positions),
    globalBatch: undefined,
    moe: undefined,
    publishedParameters: undefined,
    source,
  };
}

function fromNeox(r: FieldReader, name: string, source: string): ModelSpec {
  const hiddenSize = r.number("hidden_size", MODEL_SIZE);
  const attentionHeads = r.number("num_attention_heads", MODEL_COUNT);
  return {
    name,
    displayName: name,
    layers: r.number("num_hidden_layers", MODEL_COUNT),
    hiddenSize,
    attentionHeads,
    kvHeads: attentionHeads,
    headDim: exactDiv(r, hiddenSize, attentionHeads),
    ffnHiddenSize: r.number("intermediate_size", MODEL_SIZE),
    mlp: "gelu",
    norm: "layernorm",
    vocabSize: r.number("vocab_size", MODEL_SIZE),
    tiedEmbeddings: r.boolean("tie_word_embeddings", false),
    positionEmbedding: "rope",
    linearBias: true,
    qkvBias: false,
    dropout: (r.optionalNumber("hidden_dropout", { min: 0 }) ?? 0) > 0,
    ...defaultSeq("max_position_embeddings", r.number("max_position_embeddings", MODEL_SIZE)),
    globalBatch: undefined,
    moe: undefined,
    publishedParameters: undefined,
    source,
  };
}

function exactDiv(r: FieldReader, hidden: number, heads: number): number {
  if (hidden % heads !== 0) {
    throw new InputError({
      code: "not-divisible", file: r.file, field: "num_attention_heads", value: heads,
      valid: `a divisor of the hidden size (${hidden})`,
    });
  }
  return hidden / heads;
}
