import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { fitConstants, fitShapes, fitStepSeconds, type FitBase } from "../../src/executor/measure/calibrate.js";

const base: FitBase = {
  version: 1, measuredAt: "2026-11-22T00:00:00Z", machine: { cpus: 2, cpuModel: "test", node: "v20", platform: "linux" }, backend: "wasm",
  matmul: [{ n: 256, seconds: 1.7e-3, flopsPerSecond: 2e10 }], peakFlopsPerSecond: 2e10, optimizerBytesPerSecond: 4e9,
  memcpyBytesPerSecond: 7e9, collectiveBytesPerSecond: 3.8e9, collectiveLatencySeconds: 6e-6,
};

describe("calibrate's fit of the cost model's two constants", () => {
  const shapes = fitShapes(loadModel("tiny-gpt"));

  it("has a pair of shapes that differ only in tokens per micro-batch", () => {
    const [a, b] = shapes;
    expect(a!.model.hiddenSize).toBe(b!.model.hiddenSize);
    expect(a!.model.layers).toBe(b!.model.layers);
    expect(a!.plan.seqLen).not.toBe(b!.plan.seqLen);
  });

  it("recovers both constants from steps the cost model itself would take (so each is identified)", () => {
    // Two machines that the old fixed-overhead fit could not tell apart: much per-product cost and fast
    // element-wise work, or little and slow.
    for (const [overhead, bw] of [[100e-6, 1e9], [10e-6, 3e8], [30e-6, 4e8]] as const) {
      const runs = shapes.map((s) => ({ ...s, measuredSeconds: fitStepSeconds(base, overhead, bw, s) }));
      const fitted = fitConstants(base, runs);
      expect(fitted.opOverheadSeconds / overhead).toBeGreaterThan(0.97);
      expect(fitted.opOverheadSeconds / overhead).toBeLessThan(1.03);
      expect(fitted.elementwiseBytesPerSecond / bw).toBeGreaterThan(0.97);
      expect(fitted.elementwiseBytesPerSecond / bw).toBeLessThan(1.03);
      for (const f of fitted.fit) expect(Math.abs(Math.log(f.fittedSeconds / f.measuredSeconds)), f.shape).toBeLessThan(0.01);
    }
  });
});
