import { describe, expect, it } from "vitest";
import { layerTimes } from "../../src/planner/cost/compute.js";
import { moeRoutingBytes, moeRoutingTimes } from "../../src/planner/cost/moe-routing.js";
import type { GpuSpec } from "../../src/spec/types.js";
import { planFor, shapeOf } from "../helpers.js";

// Mixtral 8x7B as built in (its Hugging Face config.json: hidden_size 4096, 8 local experts, 2 per token).
const HIDDEN = 4096;
const EXPERTS = 8;
const TOP_K = 2;

describe("a mixture of experts' token routing (planner/cost/moe-routing.ts)", () => {
  const h100 = shapeOf("dgx-h100", 16);
  const gpu = h100.spec.gpu;
  const rate = gpu.hbmBytesPerSecond * gpu.efficiency.memoryBandwidth;

  it("streams softmax, dispatch and combine: 2E + 3kh + h elements a token forward, 3E + 4kh + h backward, at 2 bytes", () => {
    const { model, plan } = planFor("mixtral-8x7b", h100, { microBatch: 2, tp: 2, ep: 8 });
    expect([model.hiddenSize, model.moe?.experts, model.moe?.topK]).toEqual([HIDDEN, EXPERTS, TOP_K]);
    const x = 2 * plan.seqLen;
    const b = moeRoutingBytes(model, plan);
    // Every tp rank routes all the micro-batch's tokens, whole rows (the gathered input); ep does not change it.
    expect(b.forwardBytes).toBe(2 * x * (2 * EXPERTS + 3 * TOP_K * HIDDEN + HIDDEN));
    expect(b.backwardBytes).toBe(2 * x * (3 * EXPERTS + 4 * TOP_K * HIDDEN + HIDDEN));
    const t = moeRoutingTimes(model, gpu, plan);
    expect(t.forwardSeconds).toBeCloseTo(b.forwardBytes / rate, 15);
    expect(t.backwardSeconds).toBeCloseTo(b.backwardBytes / rate, 15);
  });

  it("context parallel routes a rank's share of the sequence", () => {
    const one = planFor("mixtral-8x7b", h100, { microBatch: 1, ep: 8 });
    const cp2 = planFor("mixtral-8x7b", h100, { microBatch: 1, cp: 2, ep: 8 });
    expect(moeRoutingBytes(cp2.model, cp2.plan).forwardBytes).toBe(moeRoutingBytes(one.model, one.plan).forwardBytes / 2);
  });

  it("is nothing for a dense model", () => {
    const { model, plan } = planFor("llama3-8b", h100, { microBatch: 1 });
    expect(moeRoutingBytes(model, plan)).toEqual({ forwardBytes: 0, backwardBytes: 0 });
    expect(moeRoutingTimes(model, gpu, plan)).toEqual({ forwardSeconds: 0, backwardSeconds: 0 });
  });

  it("takes the GPU's own routing rate and fixed time per pass where it gives them (the executor's profile)", () => {
    const { model, plan } = planFor("mixtral-8x7b", h100, { microBatch: 1, ep: 8 });
    const measured: GpuSpec = { ...gpu, efficiency: { ...gpu.efficiency, moeRoutingBandwidth: 0.01, moeRoutingOverheadSeconds: 2e-4 } };
    const b = moeRoutingBytes(model, plan);
    const t = moeRoutingTimes(model, measured, plan);
    expect(t.forwardSeconds).toBeCloseTo(2e-4 + b.forwardBytes / (gpu.hbmBytesPerSecond * 0.01), 15);
    expect(t.backwardSeconds).toBeCloseTo(2e-4 + b.backwardBytes / (gpu.hbmBytesPerSecond * 0.01), 15);
  });

  it("is added to the layer's forward and input-gradient passes, not to its weight gradients", () => {
    const { model, plan } = planFor("mixtral-8x7b", h100, { microBatch: 1, ep: 8 });
    const slow: GpuSpec = { ...gpu, efficiency: { ...gpu.efficiency, moeRoutingOverheadSeconds: 1e-3 } };
    const base = layerTimes(model, gpu, plan);
    const more = layerTimes(model, slow, plan);
    expect(more.forwardSeconds - base.forwardSeconds).toBeCloseTo(1e-3, 12);
    expect(more.backwardInputSeconds - base.backwardInputSeconds).toBeCloseTo(1e-3, 12);
    expect(more.backwardWeightSeconds).toBe(base.backwardWeightSeconds);
    // Its share of an H100 layer: a few percent.
    const r = moeRoutingTimes(model, gpu, plan);
    const total = base.forwardSeconds + base.backwardInputSeconds + base.backwardWeightSeconds;
    expect((r.forwardSeconds + r.backwardSeconds) / total).toBeGreaterThan(0.005);
    expect((r.forwardSeconds + r.backwardSeconds) / total).toBeLessThan(0.05);
  });
});
