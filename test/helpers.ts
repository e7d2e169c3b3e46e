import { loadCluster, loadModel } from "../src/cli/catalog.js";
import { InputError } from "../src/spec/errors.js";
import { resolvePlan, type PlanInput } from "../src/spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../src/spec/types.js";

/** A GPT of the shape Megatron-LM papers use: MHA, 4h GeLU MLP, LayerNorm, biases, dropout, learned positions. */
export function gptModel(o: { layers: number; hidden: number; heads: number; vocab: number; seq: number; dropout?: boolean }): ModelSpec {
  return {
    name: `gpt-${o.layers}x${o.hidden}`, displayName: "test GPT",
    layers: o.layers, hiddenSize: o.hidden, attentionHeads: o.heads, kvHeads: o.heads, headDim: o.hidden / o.heads,
    ffnHiddenSize: 4 * o.hidden, mlp: "gelu", norm: "layernorm", vocabSize: o.vocab, tiedEmbeddings: true,
    positionEmbedding: "learned", linearBias: true, qkvBias: false, dropout: o.dropout ?? true,
    seqLen: o.seq, globalBatch: undefined, moe: undefined, publishedParameters: undefined, source: "test",
  };
}

export function shapeOf(cluster: string, gpus: number): ClusterShape {
  const spec = loadCluster(cluster);
  return { spec, gpus, gpusPerNode: spec.gpusPerNode };
}

export function planFor(model: ModelSpec | string, shape: ClusterShape, input: PlanInput): { model: ModelSpec; plan: Plan } {
  const m = typeof model === "string" ? loadModel(model) : model;
  return { model: m, plan: resolvePlan(m, shape, input) };
}

export function relErr(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.abs(expected);
}

/** The InputError `fn` throws (any other error is rethrown); fails the test when nothing is thrown. */
export function inputErrorOf(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error("expected an InputError");
}
