import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { concurrencyFigures, fitConstants, fitShapes, fitStepSeconds, linkLatencySeconds, type FitBase } from "../../src/executor/measure/calibrate.js";
import { predict, profileShape, type DeviceProfile } from "../../src/executor/measure/profile.js";

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

  it("sets the slowdown so that the probe predicted for every core lands on the busy step, whatever it took alone", () => {
    const [probe] = shapes;
    const fitted = fitConstants(base, shapes.map((s) => ({ ...s, measuredSeconds: fitStepSeconds(base, 30e-6, 4e8, s) })));
    const one = fitted.fit[0]!.fittedSeconds;
    const busy = [1.3 * one, 1.4 * one, 1.35 * one];
    for (const alone of [[0.8 * one, 0.9 * one, 0.85 * one], [1.3 * one, 1.2 * one, 1.25 * one]]) {
      const c = concurrencyFigures(2, alone, busy, one);
      expect(c.concurrentSeconds).toBe(1.35 * one);
      expect(c.slowdown).toBeCloseTo(1.35, 12);
      // The probe as execute would predict it for one rank of two busy cores: its compute scales by the
      // slowdown; a one-rank plan has no collectives, so the whole step does.
      const profile: DeviceProfile = { ...fitted, concurrency: c };
      const step = predict(probe!.model, profileShape(profile, 2), probe!.plan).time.stepSeconds;
      expect(step / c.concurrentSeconds).toBeCloseTo(1, 6);
    }
  });

  it("takes the link's latency from its quietest round: a round where a rank slept measures the wake-up, not the link", () => {
    // One session's single rounds: 62.8, 19.8, 65.9, 60.0, 5.6 and 4.5 us.
    expect(linkLatencySeconds([62.8e-6, 5.6e-6, 60.0e-6])).toBe(5.6e-6);
    expect(linkLatencySeconds([19.8e-6])).toBe(19.8e-6);
    // The tp2 step's prediction moves with it (224 collectives a step): the quiet round's is the smaller.
    const model = loadModel("tiny-gpt");
    const tp2 = (latency: number) => {
      const profile: DeviceProfile = { ...fitConstants(base, shapes.map((x) => ({ ...x, measuredSeconds: fitStepSeconds(base, 30e-6, 4e8, x) }))), collectiveLatencySeconds: latency };
      const shape = profileShape(profile, 2);
      return predict(model, shape, resolvePlan(model, shape, { tp: 2, flashAttention: false })).time.breakdown.tpCommSeconds;
    };
    expect(tp2(linkLatencySeconds([62.8e-6, 5.6e-6]))).toBeLessThan(tp2(62.8e-6) / 4);
    expect(() => linkLatencySeconds([])).toThrow(/no round/);
  });
});
