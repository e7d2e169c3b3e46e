import { describe, expect, it } from "vitest";
import { attentionLengthFactor } from "../../src/planner/cost/attention-length.js";
import { layerTimes } from "../../src/planner/cost/compute.js";
import { planFor, shapeOf } from "../helpers.js";

// The FlashAttention-3 paper's H100 forward figure (head dim 128), TFLOP/s at 512 .. 16k, as published.
const FA2_CAUSAL = [191, 260, 298, 319, 333, 335];
const FA3_CAUSAL = [292, 423, 521, 579, 602, 616];
const FA2_UNMASKED_16K = 370;
const FA3_UNMASKED_16K = 648;
const LENGTHS = [512, 1024, 2048, 4096, 8192, 16384];

describe("attention throughput by sequence length", () => {
  it("at the published points, one rank's causal attention runs at the mean of the two kernels' fractions", () => {
    LENGTHS.forEach((s, i) => {
      const expected = (FA2_CAUSAL[i]! / FA2_UNMASKED_16K + FA3_CAUSAL[i]! / FA3_UNMASKED_16K) / 2;
      expect(attentionLengthFactor(s, 1)).toBeCloseTo(expected, 3);
    });
  });

  it("rises with length, interpolates between points and holds flat outside them", () => {
    let last = 0;
    for (let s = 256; s <= 1 << 20; s *= 2) {
      const f = attentionLengthFactor(s, 1);
      expect(f).toBeGreaterThanOrEqual(last);
      last = f;
    }
    expect(attentionLengthFactor(128, 1)).toBe(attentionLengthFactor(512, 1));
    expect(attentionLengthFactor(1 << 20, 1)).toBe(attentionLengthFactor(16384, 1));
    const mid = attentionLengthFactor(Math.sqrt(2048 * 4096), 1);
    expect(mid).toBeCloseTo((attentionLengthFactor(2048, 1) + attentionLengthFactor(4096, 1)) / 2, 9);
  });

  it("with context parallelism the curve is read at each rank's chunk of the sequence", () => {
    expect(attentionLengthFactor(65536, 4)).toBe(attentionLengthFactor(16384, 1));
    expect(attentionLengthFactor(8192, 8)).toBe(attentionLengthFactor(1024, 1));
  });

  it("makes a short-sequence layer's attention core slower per FLOP than a long one's", () => {
    const h100 = shapeOf("dgx-h100", 8);
    const perFlop = (seqLen: number) => {
      const { model, plan } = planFor("llama3-8b", h100, { seqLen, globalBatch: 8, microBatch: 1, flashAttention: true });
      return layerTimes(model, h100.spec.gpu, plan).attentionCoreForwardSeconds / (seqLen * seqLen);
    };
    const measured = h100.spec.gpu.measured?.attention;
    expect(measured?.kernel).toBe("cudnn");
    expect(perFlop(1024) / perFlop(16384)).toBeCloseTo(attentionLengthFactor(16384, 1, measured) / attentionLengthFactor(1024, 1, measured), 6);
    expect(perFlop(1024)).toBeGreaterThan(1.3 * perFlop(16384));
  });
});
