import { describe, expect, it } from "vitest";
import { inSourceUnits, type Measurement } from "../../src/validate/conventions.js";
import { relativeError } from "../../src/validate/predict.js";
import { errorsOf } from "../../src/validate/report.js";
import { median, nearestRank, summarize } from "../../src/validate/stats.js";

describe("error computation", () => {
  it("relative error is predicted over measured throughput minus one", () => {
    expect(relativeError(110, 100)).toBeCloseTo(0.1, 12);
    expect(relativeError(80, 100)).toBeCloseTo(-0.2, 12);
  });

  it("is the same in every unit: a 10% faster prediction is 1/1.1 of the iteration time and 1.1x the TFLOP/s", () => {
    const base = { tokensPerStep: 2048 * 2048, gpus: 384, flopsPerToken: 3e12, compares: "" };
    const measuredTps = (2048 * 2048) / (100 * 384);
    const iter: Measurement = { ...base, kind: "iteration-seconds", value: 100, tokensPerSecondPerGpu: measuredTps };
    const tflops: Measurement = { ...base, kind: "tflops-per-gpu", value: (measuredTps * 3e12) / 1e12, tokensPerSecondPerGpu: measuredTps };
    expect(inSourceUnits(iter, measuredTps * 1.1)).toBeCloseTo(100 / 1.1, 9);
    expect(inSourceUnits(tflops, measuredTps * 1.1) / tflops.value).toBeCloseTo(1.1, 12);
    expect(relativeError(measuredTps * 1.1, iter.tokensPerSecondPerGpu)).toBeCloseTo(0.1, 12);
  });

  it("summaries: median, nearest-rank 90th percentile and max of absolute errors", () => {
    const s = summarize([0.1, -0.3, 0.05, -0.02, 0.2, 0.01, -0.5, 0.07, 0.12, -0.04]);
    expect(s.count).toBe(10);
    expect(s.median).toBeCloseTo((0.07 + 0.1) / 2, 12);
    expect(s.p90).toBeCloseTo(0.3, 12); // 9th of 10 sorted
    expect(s.max).toBeCloseTo(0.5, 12);
    expect(median([3, 1, 2].sort())).toBe(2);
    expect(nearestRank([1, 2, 3, 4], 0.9)).toBe(4);
    expect(Number.isNaN(summarize([]).median)).toBe(true);
  });

  it("groups errors by source and overall, leaving out rows without a comparison", () => {
    const e = errorsOf([{ source: "a", error: 0.1 }, { source: "a", error: -0.3 }, { source: "b", error: 0.2 }, { source: "b", error: null }]);
    expect(e.overall.count).toBe(3);
    expect(e.bySource.a!.max).toBeCloseTo(0.3, 12);
    expect(e.bySource.b!.count).toBe(1);
  });
});
