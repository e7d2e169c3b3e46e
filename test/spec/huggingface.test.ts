import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel } from "../../src/cli/catalog.js";
import { totalParams } from "../../src/planner/cost/params.js";
import { relErr } from "../helpers.js";

const fixture = (name: string) => join(import.meta.dirname, "..", "fixtures", "hf", name, "config.json");

/**
 * Each fixture is the model's published config.json (SOURCE.md beside each says where it was checked).
 * Totals: model cards (Llama 3 8B 8.03B; Mixtral 46.7B; GPT-2 large 774M; GPT-NeoX-20B 20,554,567,680),
 * and for Mistral 7B and Qwen2 7B the parameter count that the Hugging Face Hub reads from the published
 * safetensors weights (7.24B and 7.62B), since their announcements round (7.3B) or disagree (Qwen2 blog 7.07B).
 */
const CASES: [string, number, string][] = [
  ["llama3-8b", 8.03e9, "llama"],
  ["mixtral-8x7b", 46.7e9, "mixtral"],
  ["gpt2-large", 774e6, "gpt2"],
  ["gpt-neox-20b", 20_554_567_680, "gpt_neox"],
  ["mistral-7b", 7.24e9, "mistral"],
  ["qwen2-7b", 7.62e9, "qwen2"],
];

describe("Hugging Face config.json import", () => {
  it.each(CASES)("%s (%s field names) counts within 0.5%% of %d parameters", (name, published) => {
    const model = loadModel(fixture(name));
    expect(model.name).toBe(name);
    expect(relErr(totalParams(model), published)).toBeLessThan(0.005);
  });

  it("an imported Llama 3 8B has the same shapes as the built-in one", () => {
    const imported = loadModel(fixture("llama3-8b"));
    const builtin = loadModel("llama3-8b");
    for (const key of ["layers", "hiddenSize", "attentionHeads", "kvHeads", "headDim", "ffnHiddenSize", "vocabSize", "tiedEmbeddings", "mlp", "norm"] as const) {
      expect(imported[key]).toEqual(builtin[key]);
    }
  });

  it("Llama's attention_bias and mlp_bias add their biases (they were dropped silently)", () => {
    const base = JSON.parse(readFileSync(fixture("llama3-8b"), "utf8")) as Record<string, unknown>;
    const dir = mkdtempSync(join(tmpdir(), "meshplan-hf-"));
    const load = (extra: Record<string, unknown>) => {
      const file = join(dir, "config.json");
      writeFileSync(file, JSON.stringify({ ...base, ...extra }));
      return loadModel(file);
    };
    const plain = load({});
    const kv = plain.kvHeads * plain.headDim;
    const perLayerAttention = plain.attentionHeads * plain.headDim + 2 * kv; // q, k, v biases
    const both = load({ attention_bias: true, mlp_bias: true });
    // every linear layer: q, k, v, o and the SwiGLU's gate, up and down
    expect(totalParams(both) - totalParams(plain)).toBe(plain.layers * (perLayerAttention + plain.hiddenSize + 2 * plain.ffnHiddenSize + plain.hiddenSize));
    const attention = load({ attention_bias: true });
    expect(totalParams(attention) - totalParams(plain)).toBe(plain.layers * perLayerAttention);
    expect(attention.source).toContain("o_proj bias (hidden_size per layer) is not counted");
  });

  it("Mistral's sliding window bounds the default sequence, where attention is still full; Qwen2's unused window does not", () => {
    const mistral = loadModel(fixture("mistral-7b"));
    expect(mistral.seqLen).toBe(4096);
    expect(mistral.source).toContain("sliding_window 4096");
    expect(loadModel(fixture("qwen2-7b")).seqLen).toBe(8192);
    expect(loadModel(fixture("mixtral-8x7b")).seqLen).toBe(8192);
  });

  it("says why the default sequence is shorter than the config's positions, and says nothing when it is not", () => {
    expect(loadModel(fixture("mistral-7b")).defaultSeqNote).toBe("sequence 4096 tokens by default, not max_position_embeddings 32768: its sliding_window (attention is full within it); --seq sets it");
    expect(loadModel(fixture("mixtral-8x7b")).defaultSeqNote).toMatch(/^sequence 8192 tokens by default, not max_position_embeddings 32768: capped at 8192/);
    expect(loadModel(fixture("llama3-8b")).defaultSeqNote).toBeUndefined(); // its max_position_embeddings is 8192
    expect(loadModel(fixture("gpt2-large")).defaultSeqNote).toBeUndefined();
  });

  it("Mixtral's experts and top-k come through; Qwen2's q/k/v biases too", () => {
    expect(loadModel(fixture("mixtral-8x7b")).moe).toEqual({ experts: 8, topK: 2 });
    expect(loadModel(fixture("qwen2-7b")).qkvBias).toBe(true);
  });
});
