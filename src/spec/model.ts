import { InputError } from "./errors.js";
import { FieldReader, MODEL_COUNT, MODEL_SIZE, POSITIVE_INT, readKvHeads } from "./read.js";
import type { ModelSpec, MoeSpec } from "./types.js";

/** Validates a meshplan model JSON (already parsed). `file` names where it came from, for errors. */
export function parseModel(json: unknown, file: string, fallbackName: string): ModelSpec {
  const r = FieldReader.of(json, file);
  const name = r.optionalString("name") ?? fallbackName;
  const hiddenSize = r.number("hiddenSize", MODEL_SIZE);
  const attentionHeads = r.number("attentionHeads", MODEL_COUNT);
  const kvHeads = readKvHeads(r, "kvHeads", "attentionHeads", attentionHeads);
  const headDim = r.optionalNumber("headDim", MODEL_SIZE) ?? hiddenSize / attentionHeads;
  if (!Number.isInteger(headDim)) {
    throw new InputError({
      code: "not-divisible", file, field: "attentionHeads", value: attentionHeads,
      valid: `a divisor of hiddenSize (${hiddenSize}), or give headDim`,
    });
  }
  const spec: ModelSpec = {
    name,
    displayName: r.optionalString("displayName") ?? name,
    layers: r.number("layers", MODEL_COUNT),
    hiddenSize,
    attentionHeads,
    kvHeads,
    headDim,
    ffnHiddenSize: r.number("ffnHiddenSize", MODEL_SIZE),
    mlp: r.oneOf("mlp", ["swiglu", "gelu"]),
    norm: r.oneOf("norm", ["rmsnorm", "layernorm"], "layernorm"),
    vocabSize: r.number("vocabSize", MODEL_SIZE),
    tiedEmbeddings: r.boolean("tiedEmbeddings", false),
    positionEmbedding: r.oneOf("positionEmbedding", ["rope", "learned", "alibi"], "rope"),
    linearBias: r.boolean("linearBias", false),
    qkvBias: r.boolean("qkvBias", false),
    dropout: r.boolean("dropout", false),
    ...(r.boolean("embeddingNorm", false) ? { embeddingNorm: true } : {}),
    seqLen: r.number("seqLen", MODEL_SIZE),
    globalBatch: r.optionalNumber("globalBatch", POSITIVE_INT),
    moe: r.has("moe") ? parseMoe(r.child("moe")) : undefined,
    publishedParameters: r.optionalNumber("publishedParameters", { above: 0 }),
    source: r.optionalString("source") ?? "(no source given)",
  };
  r.rejectUnread();
  return spec;
}

function parseMoe(r: FieldReader): MoeSpec {
  const experts = r.number("experts", MODEL_COUNT);
  const topK = r.number("topK", { integer: true, min: 1, max: experts });
  r.rejectUnread();
  return { experts, topK };
}
