import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { activeParams, totalParams } from "../../src/planner/cost/params.js";
import { relErr } from "../helpers.js";

/** Published totals, each with its source. */
const PUBLISHED: [string, number, string][] = [
  ["llama3-8b", 8.03e9, "Meta Llama 3 8B model card on Hugging Face: 8.03B parameters"],
  ["llama3-70b", 70.6e9, "Meta Llama 3 70B model card on Hugging Face: 70.6B parameters"],
  ["llama3-405b", 405e9, "Llama Team 2024, 'The Llama 3 Herd of Models', Table 3: 405B"],
  ["gpt3-175b", 175e9, "Brown et al. 2020, 'Language Models are Few-Shot Learners', Table 2.1: 175.0B"],
  ["mixtral-8x7b", 46.7e9, "Jiang et al. 2024, 'Mixtral of Experts', section 2: 47B total (Mistral AI: 46.7B)"],
];

describe("parameter count", () => {
  it.each(PUBLISHED)("%s is within 0.5%% of the published %d (%s)", (name, published) => {
    expect(relErr(totalParams(loadModel(name)), published)).toBeLessThan(0.005);
  });

  it("Mixtral's active parameters per token are about 13B (two of eight experts; Jiang et al. 2024, section 2)", () => {
    expect(relErr(activeParams(loadModel("mixtral-8x7b")), 12.9e9)).toBeLessThan(0.01);
  });

  it("a model file's own publishedParameters agrees with the counted total for the models tested above", () => {
    for (const [name] of PUBLISHED) {
      const m = loadModel(name);
      expect(m.publishedParameters).toBeDefined();
      expect(relErr(totalParams(m), m.publishedParameters!)).toBeLessThan(0.005);
    }
  });
});
