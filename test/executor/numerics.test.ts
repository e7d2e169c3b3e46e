import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import type { Numerics } from "../../src/executor/execute.js";
import { agreeingSteps, CHECKED_STEPS, numericsVerdict } from "../../src/executor/measure/numerics.js";

const reference = [5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5];
const numerics = (losses: number[], maxWeightError = 1e-6): Numerics => ({
  referenceLosses: reference,
  maxRelativeError: Math.max(...losses.map((l, i) => Math.abs(l - reference[i]!) / reference[i]!)),
  maxWeightError,
  worstTensor: "layers.0.mlp.up.w",
});
/** The reference's losses, parting by 1% from step `from` on. */
const partingFrom = (from: number) => reference.map((l, i) => (i >= from ? l * 1.01 : l * (1 + 1e-7)));

describe("whether a split reproduces the one-rank run (measure/numerics.ts)", () => {
  it("counts the leading steps within 1e-4 relative", () => {
    expect(agreeingSteps(partingFrom(8), reference)).toBe(8);
    expect(agreeingSteps(partingFrom(3), reference)).toBe(3);
    expect(agreeingSteps(partingFrom(0), reference)).toBe(0);
  });

  it("a dense model: every step's loss and the final weights, with no note", () => {
    const dense = loadModel("tiny-gpt");
    expect(numericsVerdict(dense, partingFrom(8), numerics(partingFrom(8)))).toEqual({ ok: true });
    expect(numericsVerdict(dense, partingFrom(6), numerics(partingFrom(6))).ok).toBe(false);
    expect(numericsVerdict(dense, partingFrom(8), numerics(partingFrom(8), 2e-3)).ok).toBe(false);
  });

  it("a mixture of experts: the first 5 steps' losses, and a note saying where the runs part", () => {
    const moe = loadModel("tiny-moe");
    expect(CHECKED_STEPS).toBe(5);
    expect(numericsVerdict(moe, partingFrom(8), numerics(partingFrom(8)))).toEqual({ ok: true });
    const late = numericsVerdict(moe, partingFrom(6), numerics(partingFrom(6), 0.03));
    expect(late.ok).toBe(true);
    expect(late.note).toMatch(/first 6 of 8 steps, then part: a mixture of experts .* its check is the first 5 steps' losses/);
    const early = numericsVerdict(moe, partingFrom(4), numerics(partingFrom(4)));
    expect(early.ok).toBe(false);
    expect(early.note).toMatch(/first 4 of 8 steps/);
    // A run of 3 steps is checked over its 3.
    expect(numericsVerdict(moe, partingFrom(2).slice(0, 3), numerics(partingFrom(2).slice(0, 3))).ok).toBe(false);
  });
});
