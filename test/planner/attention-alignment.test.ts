import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { layerTimes, misalignedAttentionRate } from "../../src/planner/cost/compute.js";
import type { ClusterShape, GpuSpec } from "../../src/spec/types.js";
import { gptModel, planFor, shapeOf } from "../helpers.js";

// BLOOM's candidates: hidden 13824 with 128 heads (head dim 108, not a multiple of 8) against 96 heads (144).
const misaligned = gptModel({ layers: 4, hidden: 13824, heads: 128, vocab: 250880, seq: 2048 });
const aligned = gptModel({ layers: 4, hidden: 13824, heads: 96, vocab: 250880, seq: 2048 });

function core(model: typeof aligned, shape: ClusterShape, flashAttention: boolean, gpu: GpuSpec = shape.spec.gpu): number {
  const { plan } = planFor(model, shape, { tp: 8, pp: 1, microBatch: 4, globalBatch: 4, flashAttention, precision: "fp16" });
  return layerTimes(model, gpu, plan).attentionCoreForwardSeconds;
}

describe("unfused attention products with a misaligned head dimension", () => {
  const a100 = shapeOf("dgx-a100-80gb", 8);
  const gpu = a100.spec.gpu;
  const { fp32: _, ...peaks } = gpu.peakFlopsPerSecond;
  const noFp32: GpuSpec = { ...gpu, peakFlopsPerSecond: peaks };
  // Q K^T and P V forward, per rank: 2 products of 2 * tokens * seqLen * (hidden / tp) FLOPs.
  const coreFlops = 2 * 2 * (4 * 2048) * 2048 * (13824 / 8);

  it("run at the CUDA-core fp32 rate (datasheet 19.5 TFLOP/s on A100) times matmulMax", () => {
    const rate = coreFlops / core(misaligned, a100, false);
    const cudaCore = gpu.peakFlopsPerSecond.fp32! * gpu.efficiency.matmulMax;
    // Only the fixed cost per product (2 x 5 us against about 7 ms) separates them.
    expect(rate / cudaCore).toBeGreaterThan(0.995);
    expect(rate / cudaCore).toBeLessThan(1);
    expect(core(misaligned, a100, false)).toBeGreaterThan(5 * core(aligned, a100, false));
  });

  it("leave fused (flash) attention and aligned head dimensions at the 16-bit rate", () => {
    expect(core(misaligned, a100, true)).toBeCloseTo(core(aligned, a100, true), 12);
    for (const model of [aligned, gptModel({ layers: 4, hidden: 14336, heads: 128, vocab: 250880, seq: 2048 })]) {
      expect(core(model, a100, false)).toBe(core(model, a100, false, noFp32));
    }
  });

  it("fall back to the 16-bit rate on a GPU without an fp32 figure", () => {
    expect(core(misaligned, a100, false, noFp32)).toBeLessThan(core(misaligned, a100, false) / 5);
    expect(coreFlops / core(misaligned, a100, false, noFp32)).toBeGreaterThan(gpu.peakFlopsPerSecond.fp32!);
  });
});

describe("unfused attention products with a misaligned head dimension on a GPU that measured them", () => {
  const h100 = shapeOf("dgx-h100", 8);
  const gpu = h100.spec.gpu;
  const measured = gpu.measured!;
  const coreFlops = 2 * 2 * (4 * 2048) * 2048 * (13824 / 8);
  const raw = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "hardware", "measured", "h100-sxm.json"), "utf8")) as {
    attentionAlignment: { rows: { dtype: string; headDim: number; forwardFlops: number; forwardSeconds: number; backwardSeconds: number }[] };
  };

  it("reads the bf16 rows of the head dimensions that are not multiples of 8, median over passes", () => {
    const m = measured.misalignedAttention!;
    expect(m.headDims).toEqual([108, 150, 225, 450]);
    for (const [i, d] of m.headDims.entries()) {
      const rates = raw.attentionAlignment.rows.filter((r) => r.dtype === "bfloat16" && r.headDim === d)
        .map((r) => (3 * r.forwardFlops) / (r.forwardSeconds + r.backwardSeconds)).sort((a, b) => a - b);
      expect(rates).toHaveLength(3);
      expect(m.flopsPerSecond[i]).toBe(rates[1]);
    }
  });

  it("are charged the nearest measured head dimension's rate, relative to the grid's plateau, at the GPU's level", () => {
    const m = measured.misalignedAttention!;
    const expected = (m.flopsPerSecond[0]! / measured.gemm16.plateauFlopsPerSecond) * gpu.peakFlopsPerSecond.fp16! * gpu.efficiency.matmulMax;
    const rate = coreFlops / core(misaligned, h100, false); // head dimension 108, measured
    // Only the fixed cost per product (2 x 5 us against about 0.8 ms) separates them.
    expect(rate / expected).toBeGreaterThan(0.98);
    expect(rate / expected).toBeLessThan(1);
    const { plan } = planFor(misaligned, h100, { tp: 8, pp: 1, microBatch: 4, globalBatch: 4, flashAttention: false });
    expect(misalignedAttentionRate(gpu, plan, 100)).toMatchObject({ from: "measured", headDim: 108 });
    expect(misalignedAttentionRate(gpu, plan, 300)).toMatchObject({ from: "measured", headDim: 225 });
  });

  it("run faster than the CUDA-core fp32 charge and slower than the aligned products", () => {
    const unmeasured: GpuSpec = { ...gpu, measured: { ...measured, misalignedAttention: undefined } };
    expect(core(misaligned, h100, false)).toBeLessThan(core(misaligned, h100, false, unmeasured) / 1.5);
    expect(core(misaligned, h100, false)).toBeGreaterThan(1.5 * core(aligned, h100, false));
  });
});
