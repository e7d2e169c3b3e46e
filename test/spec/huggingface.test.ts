import { describe, expect, it } from "vitest";
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

  it("Mixtral's experts and top-k come through; Qwen2's q/k/v biases too", () => {
    expect(loadModel(fixture("mixtral-8x7b")).moe).toEqual({ experts: 8, topK: 2 });
    expect(loadModel(fixture("qwen2-7b")).qkvBias).toBe(true);
  });
});
