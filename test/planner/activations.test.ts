import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { inFlightMicroBatches, layerActivationBytes, weightGradInputBytes } from "../../src/planner/cost/activations.js";
import { stageActivationBytes } from "../../src/planner/cost/memory.js";
import { gptModel, planFor, relErr, shapeOf } from "../helpers.js";

/**
 * Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", section 4:
 * bytes per layer in 16-bit with dropout and no flash attention, s = sequence, b = micro-batch, h = hidden,
 * a = heads, t = tensor-parallel size.
 */
const korthikanti = {
  none: (s: number, b: number, h: number, a: number) => s * b * h * (34 + (5 * a * s) / h), // eq. 1
  tp: (s: number, b: number, h: number, a: number, t: number) => s * b * h * (10 + 24 / t + (5 * a * s) / (h * t)), // eq. 2
  tpSp: (s: number, b: number, h: number, a: number, t: number) => ((s * b * h) / t) * (34 + (5 * a * s) / h), // eq. 4
  selectiveSp: (s: number, b: number, h: number, t: number) => ((s * b * h) / t) * 34, // eq. 6
  full: (s: number, b: number, h: number) => 2 * s * b * h, // Table 2, full recomputation
};

const shape = shapeOf("dgx-a100-80gb", 512);
// The GPT-3 175B configuration of the paper's Table 3 (s = 2048, h = 12288, a = 96).
const gpt175 = gptModel({ layers: 96, hidden: 12288, heads: 96, vocab: 51200, seq: 2048 });

function layerBytes(input: Parameters<typeof planFor>[2], model = gpt175) {
  const { plan } = planFor(model, shape, { flashAttention: false, ...input });
  return layerActivationBytes(model, plan);
}

describe("activation memory per layer (Korthikanti et al. 2022)", () => {
  const [s, h, a] = [2048, 12288, 96];

  it("no parallelism, nothing recomputed: s*b*h*(34 + 5as/h)", () => {
    for (const b of [1, 2, 4]) expect(layerBytes({ microBatch: b }).none).toBe(korthikanti.none(s, b, h, a));
  });

  it("tensor parallel without sequence parallel: s*b*h*(10 + 24/t + 5as/(ht))", () => {
    for (const t of [2, 4, 8]) {
      expect(layerBytes({ tp: t, sequenceParallel: false }).none).toBeCloseTo(korthikanti.tp(s, 1, h, a, t), 0);
    }
  });

  it("tensor plus sequence parallel: s*b*h/t*(34 + 5as/h)", () => {
    for (const t of [2, 4, 8]) expect(layerBytes({ tp: t, sequenceParallel: true }).none).toBeCloseTo(korthikanti.tpSp(s, 1, h, a, t), 0);
  });

  it("selective recomputation with sequence parallel: 34*s*b*h/t", () => {
    for (const t of [1, 2, 8]) {
      expect(layerBytes({ tp: t, recompute: "selective" }).selective).toBeCloseTo(korthikanti.selectiveSp(s, 1, h, t), 0);
    }
  });

  it("full recomputation keeps the layer input: 2*s*b*h", () => {
    expect(layerBytes({ recompute: "full" }).full).toBe(korthikanti.full(s, 1, h));
    expect(layerBytes({ tp: 8, recompute: "full" }).full).toBe(korthikanti.full(s, 1, h) / 8); // SP shards it
  });

  it("first pipeline stage of 1F1B holds p micro-batches: total s*b*h*L/t*(34 + 5as/h), independent of p (eq. 5)", () => {
    for (const p of [2, 4, 8]) {
      const { model, plan } = planFor(gpt175, shape, { tp: 8, pp: p, flashAttention: false, globalBatch: 512 });
      const act = layerActivationBytes(model, plan);
      const layers = plan.layersPerStage[0]!;
      const perLayer = act.none;
      expect(inFlightMicroBatches(plan, 0, 512 / (plan.dp * plan.microBatch)) * layers * perLayer).toBeCloseTo(96 * korthikanti.tpSp(s, 1, h, a, 8), 0);
    }
  });

  it("flash attention removes the s^2 term, keeping only an fp32 log-sum-exp per row", () => {
    const flash = layerBytes({ tp: 8, flashAttention: true }).none;
    const lse = (4 * a * s) / 8;
    expect(flash).toBeCloseTo(korthikanti.selectiveSp(s, 1, h, 8) + lse, 0);
  });

  it("the generalised count agrees with eq. 1 on random GPT shapes (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(8, 16, 32), fc.integer({ min: 1, max: 8 }), fc.constantFrom(512, 1024, 2048, 4096), fc.integer({ min: 1, max: 4 }),
        (heads, dimMul, seq, b) => {
          const hidden = heads * 64 * dimMul;
          const model = gptModel({ layers: 8, hidden, heads, vocab: 32000, seq });
          const got = layerBytes({ microBatch: b }, model).none;
          expect(relErr(got, korthikanti.none(seq, b, hidden, heads))).toBeLessThan(1e-12);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("interleaving multiplies the first stage's activations by 1 + (p-1)/(p v) (Korthikanti et al. 2022, section 4.2.3)", () => {
    const model = gptModel({ layers: 96, hidden: 12288, heads: 96, vocab: 51200, seq: 2048 });
    for (const [p, v] of [[4, 2], [8, 3], [8, 4]] as const) {
      const { plan } = planFor(model, shape, { tp: 8, pp: p, virtualStages: v, globalBatch: 64 * p, flashAttention: false });
      const m = 64 * p / plan.dp;
      expect(inFlightMicroBatches(plan, 0, m)).toBeCloseTo(p * (1 + (p - 1) / (p * v)), 12);
      const layers = plan.layersPerStage[0]!;
      const act = layerActivationBytes(model, plan);
      const stage0 = stageActivationBytes(model, plan, 0, m, act);
      expect(stage0).toBeCloseTo(p * (1 + (p - 1) / (p * v)) * layers * act.none, -3);
    }
  });
});

describe("ZB-H1's weight-gradient inputs (kept from each B to its W)", () => {
  const [s, h] = [2048, 12288];

  it("every linear's output gradient: 2 x (3h + h + 4h + h) bytes per token without tensor parallel", () => {
    const { plan } = planFor(gpt175, shape, { flashAttention: false, schedule: "zb-h1", pp: 2 });
    expect(weightGradInputBytes(gpt175, plan)).toBe(2 * s * 9 * h);
  });

  it("under sequence parallel the column-parallel inputs gathered again too: 2 x (7h/t + 2h + 2h)", () => {
    for (const t of [2, 4, 8]) {
      const { plan } = planFor(gpt175, shape, { flashAttention: false, schedule: "zb-h1", pp: 2, tp: t, sequenceParallel: true });
      expect(weightGradInputBytes(gpt175, plan)).toBeCloseTo(2 * s * ((7 * h) / t + 4 * h), 6);
    }
  });

  it("stage i holds them for up to i + 1 micro-batches, on top of min(p, m) micro-batches' activations", () => {
    const { plan } = planFor(gpt175, shape, { flashAttention: true, schedule: "zb-h1", pp: 4, tp: 8, globalBatch: 64 });
    const m = 64 / plan.dp;
    const a = layerActivationBytes(gpt175, plan);
    const layers = plan.layersPerStage[1]!;
    const kept = layers * a.none;
    const w = layers * weightGradInputBytes(gpt175, plan);
    // A middle stage: no logits, nothing recomputed, so its peak is at the end of a backward.
    expect(stageActivationBytes(gpt175, plan, 1, m, a)).toBeCloseTo(Math.min(4, m) * kept + Math.min(2, m) * w, 0);
    // Without the split (1F1B) the same stage holds min(p - i, m) micro-batches and nothing for W.
    const ofb = planFor(gpt175, shape, { flashAttention: true, schedule: "1f1b", pp: 4, tp: 8, globalBatch: 64 }).plan;
    expect(stageActivationBytes(gpt175, ofb, 1, m, layerActivationBytes(gpt175, ofb))).toBeCloseTo(3 * kept, 0);
  });
});

describe("activation memory under fp8: what Transformer Engine's linears keep (TE linear.py, layernorm_linear.py)", () => {
  const h100 = shapeOf("dgx-h100", 64);
  const llama = "llama3-70b";

  it("each linear keeps its input's fp8 cast (1 byte) for the weight gradient; the projection also an fp8 copy of the attention output", () => {
    for (const tp of [1, 4, 8]) for (const sequenceParallel of tp > 1 ? [true, false] : [false]) {
      const input = { tp, sequenceParallel, microBatch: 2, seqLen: 4096 } as const;
      const bf16 = planFor(llama, h100, { ...input, precision: "bf16" });
      const fp8 = planFor(llama, h100, { ...input, precision: "fp8" });
      const m = bf16.model;
      const x = 2 * 4096;
      const r = sequenceParallel ? tp : 1;
      const q = (m.attentionHeads * m.headDim) / tp;
      const f = m.ffnHiddenSize / tp;
      // QKV input and FC1 input: 2 -> 1 byte of x h / r each; FC2 input: 2 -> 1 byte of x f; projection: + 1 byte of x q
      const difference = -(x * m.hiddenSize) / r - (x * m.hiddenSize) / r - x * f + x * q;
      const a16 = layerActivationBytes(m, bf16.plan);
      const a8 = layerActivationBytes(fp8.model, fp8.plan);
      expect(a8.none - a16.none).toBeCloseTo(difference, 0);
      expect(a8.full).toBe(a16.full); // a recomputed layer keeps its 16-bit input either way
    }
  });

  it("with fp8Keep16BitInputs (torchao's Float8Linear) the count is bf16's, and the switch is refused without fp8", () => {
    const bf16 = planFor(llama, h100, { tp: 4, precision: "bf16" });
    const hp = planFor(llama, h100, { tp: 4, precision: "fp8", fp8Keep16BitInputs: true });
    expect(hp.plan.fp8Keep16BitInputs).toBe(true);
    expect(layerActivationBytes(hp.model, hp.plan)).toEqual(layerActivationBytes(bf16.model, bf16.plan));
    expect(() => planFor(llama, h100, { tp: 4, precision: "bf16", fp8Keep16BitInputs: true })).toThrow(/fp8Keep16BitInputs = true is not valid/);
  });
});
