import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { causalSkippedShare, stepFlops } from "../../src/planner/cost/flops.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { causalNote } from "../../src/planner/explain/explain.js";
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

  it("the causal mask skips half the attention-score FLOPs: (s/12h) / (1 + s/6h + V/12lh) of Narayanan's count", () => {
    for (const [s, h, l] of [[2048, 12288, 96], [32768, 4096, 32], [131072, 4096, 32]] as const) {
      const model = gptModel({ layers: l, hidden: h, heads: h / 128, vocab: 51200, seq: s });
      const { plan } = planFor(model, shape, { globalBatch: 64 });
      const expected = s / (12 * h) / (1 + s / (6 * h) + 51200 / (12 * l * h));
      expect(relErr(causalSkippedShare(model, plan), expected)).toBeLessThan(1e-12);
    }
  });

  it("plan and simulate say so when that is 10% or more of the count, with the MFU over the FLOPs that run", () => {
    const short = gptModel({ layers: 96, hidden: 12288, heads: 96, vocab: 51200, seq: 2048 });
    const long = gptModel({ layers: 32, hidden: 4096, heads: 32, vocab: 51200, seq: 131072 });
    const at = (model: typeof short) => {
      const { plan } = planFor(model, shape, { tp: 8, pp: 8, recompute: "full", globalBatch: 64 });
      return { e: estimate(model, shape, plan), share: causalSkippedShare(model, plan) };
    };
    expect(at(short).share).toBeLessThan(0.1);
    expect(causalNote(short, at(short).e)).toBeUndefined();
    const { e, share } = at(long);
    expect(share).toBeGreaterThan(0.1);
    const note = causalNote(long, e)!;
    expect(note).toContain(`${(100 * share).toFixed(1)}% of the counted FLOPs`);
    expect(note).toContain(`MFU is ${(100 * e.throughput.mfu * (1 - share)).toFixed(1)}%`);
  });
});
