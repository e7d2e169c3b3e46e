import type { ModelSpec } from "../spec/types.js";
import type { SourceProfile } from "./profiles.js";
import type { MeasurementRecord } from "./records.js";

/**
 * A record's model as a meshplan ModelSpec: the published shape, the architecture of its family (Llama:
 * SwiGLU, RMSNorm, RoPE, no biases, untied output; Nemotron: plain MLP, RoPE, untied; GPT, BLOOM and MPT:
 * GeLU 4h MLP, LayerNorm, biases, tied embeddings, a learned position table, Megatron-LM defaults; BLOOM's
 * profile gives ALiBi instead) and the profile's defaults for what the record leaves out. A built-in model with the same shape is used instead when there is one.
 */
export interface ModelResult {
  readonly model?: ModelSpec;
  readonly skip?: string;
  readonly assumptions: readonly string[];
}

function family(r: MeasurementRecord): "llama" | "nemotron" | "gpt" {
  const text = `${r.model.name} ${r.model.family ?? ""}`.toLowerCase();
  if (text.includes("llama")) return "llama";
  if (text.includes("nemotron")) return "nemotron";
  return "gpt";
}

function sameShape(a: ModelSpec, b: ModelSpec): boolean {
  return a.layers === b.layers && a.hiddenSize === b.hiddenSize && a.attentionHeads === b.attentionHeads &&
    a.kvHeads === b.kvHeads && a.ffnHiddenSize === b.ffnHiddenSize && a.vocabSize === b.vocabSize && a.mlp === b.mlp &&
    a.moe === undefined && b.moe === undefined;
}

export function recordModel(r: MeasurementRecord, profile: SourceProfile, builtins: readonly ModelSpec[]): ModelResult {
  const m = r.model;
  const assumptions: string[] = [];
  if (m.layers === null) return { skip: "layers not stated", assumptions };
  if (m.hidden === null) return { skip: "hidden size not stated", assumptions };
  const fill = (value: number | null, fallback: number | undefined, what: string): number | undefined => {
    if (value !== null) return value;
    if (fallback !== undefined) assumptions.push(`${what} ${fallback} (${profile.framework} default)`);
    return fallback;
  };
  const heads = fill(m.heads, profile.heads, "heads");
  const vocab = fill(m.vocab, profile.vocab, "vocab");
  const seqLen = fill(m.seq_len, profile.seqLen, "seq");
  if (heads === undefined) return { skip: "attention heads not stated", assumptions };
  if (vocab === undefined) return { skip: "vocabulary not stated", assumptions };
  if (seqLen === undefined) return { skip: "sequence length not stated", assumptions };
  const fam = family(r);
  const ffn = m.ffn ?? 4 * m.hidden;
  if (m.ffn === null) {
    if (fam === "llama") return { skip: "SwiGLU MLP size not stated", assumptions };
    assumptions.push(`ffn 4h = ${ffn}`);
  }
  const headDim = m.hidden / heads;
  if (!Number.isInteger(headDim)) return { skip: `hidden ${m.hidden} is not a multiple of ${heads} heads`, assumptions };
  const llama = fam === "llama";
  const spec: ModelSpec = {
    name: r.id,
    displayName: m.name,
    layers: m.layers,
    hiddenSize: m.hidden,
    attentionHeads: heads,
    kvHeads: m.kv_heads ?? heads,
    headDim,
    ffnHiddenSize: ffn,
    mlp: llama ? "swiglu" : "gelu",
    norm: llama ? "rmsnorm" : "layernorm",
    vocabSize: vocab,
    tiedEmbeddings: fam === "gpt",
    positionEmbedding: profile.positionEmbedding ?? (fam === "gpt" ? "learned" : "rope"),
    linearBias: fam === "gpt",
    qkvBias: false,
    dropout: profile.dropout,
    ...(profile.embeddingNorm === true ? { embeddingNorm: true } : {}),
    seqLen,
    globalBatch: r.parallel.global_batch_size ?? undefined,
    moe: undefined,
    publishedParameters: m.params_b === null ? undefined : m.params_b * 1e9,
    source: `${r.source} ${r.id}: ${r.publication}`,
  };
  const builtin = builtins.find((b) => sameShape(b, spec));
  if (builtin !== undefined) return { model: { ...builtin, seqLen, dropout: profile.dropout }, assumptions: [...assumptions, `built-in model ${builtin.name}`] };
  return { model: spec, assumptions };
}
