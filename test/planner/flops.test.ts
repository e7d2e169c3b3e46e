import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { stepFlops } from "../../src/planner/cost/flops.js";
import { gptModel, planFor, relErr, shapeOf } from "../helpers.js";

/** Narayanan et al. 2021 (SC'21), section 5.1: FLOPs per iteration for a GPT with B sequences of s tokens. */
const narayanan = (B: number, s: number, l: number, h: number, V: number) => 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
const narayananRecompute = (B: number, s: number, l: number, h: number, V: number) =>
  96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));

const shape = shapeOf("dgx-a100-80gb", 64);

describe("FLOPs per step (Narayanan et al. 2021)", () => {
  it("model FLOPs equal 72Bslh^2(1 + s/6h + V/12lh) on random GPT shapes (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 96 }), fc.constantFrom(16, 32, 64), fc.integer({ min: 1, max: 4 }), fc.constantFrom(1024, 2048, 4096), fc.constantFrom(64, 512, 2048), (l, heads, mul, s, B) => {
        const h = heads * 64 * mul;
        const model = gptModel({ layers: l, hidden: h, heads, vocab: 51200, seq: s });
        const { plan } = planFor(model, shape, { globalBatch: B });
        expect(relErr(stepFlops(model, plan).modelFlops, narayanan(B, s, l, h, 51200))).toBeLessThan(1e-12);
      }),
      { numRuns: 60 },
    );
  });

  it("with full recomputation, hardware FLOPs equal 96Bslh^2(1 + s/6h + V/16lh) and model FLOPs do not change", () => {
    const model = gptModel({ layers: 96, hidden: 12288, heads: 96, vocab: 51200, seq: 2048 });
    const { plan } = planFor(model, shape, { tp: 8, pp: 8, recompute: "full", globalBatch: 1536 });
    const f = stepFlops(model, plan);
    expect(relErr(f.hardwareFlops, narayananRecompute(1536, 2048, 96, 12288, 51200))).toBeLessThan(1e-12);
    expect(relErr(f.modelFlops, narayanan(1536, 2048, 96, 12288, 51200))).toBeLessThan(1e-12);
  });

  it("selective recomputation without flash attention adds the attention-score forward: 4*B*s^2*h per layer", () => {
    const model = gptModel({ layers: 24, hidden: 2048, heads: 16, vocab: 51200, seq: 2048 });
    const { plan } = planFor(model, shape, { recompute: "selective", flashAttention: false, globalBatch: 64 });
    const f = stepFlops(model, plan);
    expect(f.hardwareFlops - f.modelFlops).toBe(24 * 4 * 64 * 2048 * 2048 * 2048);
  });
});
