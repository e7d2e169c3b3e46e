import { beforeAll, describe, expect, it } from "vitest";
import { profileSectionVerdict } from "./profile-fields.js";
import { fitShapes } from "../../src/executor/measure/calibrate.js";
import { FIT_EXPERTS, withFitExperts } from "../../src/executor/measure/fit-plan.js";
import { profileGpu, profileShape, type DeviceProfile } from "../../src/executor/measure/profile.js";
import { routingCost, routingPassSeconds } from "../../src/executor/measure/routing.js";
import type { Tf } from "../../src/executor/model/ops.js";
import { loadBackend } from "../../src/executor/run/backend.js";
import { loadModel } from "../../src/cli/catalog.js";
import { moeRoutingBytes, moeRoutingTimes } from "../../src/planner/cost/moe-routing.js";
import { tinyGpt } from "./check.js";

const base: DeviceProfile = {
  version: 1, measuredAt: "2026-11-25T00:00:00Z", machine: { cpus: 2, cpuModel: "test", node: "v20", platform: "linux" }, backend: "wasm",
  matmul: [{ n: 64, seconds: 1e-4, flopsPerSecond: 5e9 }], peakFlopsPerSecond: 5e9, opOverheadSeconds: 1e-6, elementwiseBytesPerSecond: 1e9,
  memcpyBytesPerSecond: 8e9, collectiveBytesPerSecond: 3e9, collectiveLatencySeconds: 3e-6, fit: [],
};
const moeRouting = { overheadSeconds: 1.5e-4, bytesPerSecond: 7e7, measured: [{ shape: "h64 s32 L2", bytes: 66816, seconds: 1.4e-3 }] };

describe("a mixture of experts' routing timed on the wasm backend (measure/routing.ts)", () => {
  let tf: Tf;
  beforeAll(async () => {
    tf = (await loadBackend("wasm", 1)).tf;
  });

  it("calibrate's experts are tiny-moe's", () => {
    expect(FIT_EXPERTS).toEqual(loadModel("tiny-moe").moe);
    expect(withFitExperts(tinyGpt(2)).moe).toEqual(FIT_EXPERTS);
  });

  it("times the routing's forward and B (W has none), leaving no tensor behind; refuses a dense model", () => {
    const s = fitShapes(tinyGpt(2))[1]!; // h64 s8, the smallest
    const before = tf.memory().numTensors;
    const t = routingPassSeconds(tf, withFitExperts(s.model), s.plan, 3);
    expect(tf.memory().numTensors).toBe(before);
    for (const x of [t.forwardSeconds, t.backwardInputSeconds]) {
      expect(x).toBeGreaterThan(0);
      expect(x).toBeLessThan(1);
    }
    expect(t.backwardWeightSeconds).toBe(0);
    expect(() => routingPassSeconds(tf, s.model, s.plan, 3)).toThrow(/no experts/);
  });

  it("fits a line through the shapes' seconds against the cost model's bytes of both passes", () => {
    const shapes = fitShapes(tinyGpt(2)).slice(0, 2).map((s) => ({ ...s, model: withFitExperts(s.model) }));
    const c = routingCost(tf, shapes, 3);
    expect(c.measured.map((m) => m.shape)).toEqual(shapes.map((s) => s.shape));
    for (const [i, m] of c.measured.entries()) {
      const b = moeRoutingBytes(shapes[i]!.model, shapes[i]!.plan);
      expect(m.bytes).toBe(b.forwardBytes + b.backwardBytes);
      expect(m.seconds).toBeGreaterThan(0);
    }
    expect(c.bytesPerSecond).toBeGreaterThan(0);
    expect(c.overheadSeconds).toBeGreaterThanOrEqual(0);
  });
});

describe("the routing's cost in a device profile", () => {
  const model = loadModel("tiny-moe");
  const plan = fitShapes(tinyGpt(2))[0]!.plan;

  it("prices tiny-moe's routing at the profile's rate and fixed time, slowed with the ranks as the other measured costs", () => {
    const p: DeviceProfile = { ...base, moeRouting, concurrency: { ranks: 2, aloneSeconds: 1, concurrentSeconds: 1.5, fittedSeconds: 1, slowdown: 1.5 } };
    const b = moeRoutingBytes(model, plan);
    const one = moeRoutingTimes(model, profileGpu(p), plan);
    expect(one.forwardSeconds).toBeCloseTo(1.5e-4 + b.forwardBytes / 7e7, 12);
    expect(one.backwardSeconds).toBeCloseTo(1.5e-4 + b.backwardBytes / 7e7, 12);
    const two = moeRoutingTimes(model, profileShape(p, 2).spec.gpu, plan);
    expect(two.forwardSeconds).toBeCloseTo(1.5 * one.forwardSeconds, 12);
    // An older profile without it: the element-wise rate and no fixed time.
    expect(moeRoutingTimes(model, profileGpu(base), plan).forwardSeconds).toBeCloseTo(b.forwardBytes / 1e9, 12);
  });

  it("is checked on reading a profile, naming the field", () => {
    const bad = (r: unknown) => profileSectionVerdict(base, "moeRouting", r);
    expect(bad(moeRouting)).toBe("accepted");
    expect(bad({ ...moeRouting, bytesPerSecond: 0 })).toMatch(/moeRouting\.bytesPerSecond = 0 is not valid/);
    expect(bad({ ...moeRouting, overheadSeconds: -1 })).toMatch(/moeRouting\.overheadSeconds/);
    expect(bad({ overheadSeconds: 1e-4, bytesPerSecond: 1e8 })).toMatch(/moeRouting\.measured/);
  });
});
