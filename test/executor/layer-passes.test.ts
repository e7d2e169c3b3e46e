import { beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { embeddingPassSeconds, firstUsePerParam, firstUseSeconds, layerPassSeconds, passShares, shapeOnlyGroup } from "../../src/executor/measure/passes.js";
import { profileGpu, profileShape, withPricedPasses, type DeviceProfile } from "../../src/executor/measure/profile.js";
import { layerTimes, pricedVPassRatios } from "../../src/planner/cost/compute.js";
import { fittedVPassRatios, planVPassRatios, replayLength, vPassRatios, zbvOrder } from "../../src/planner/cost/zb-v.js";
import { profileSectionVerdict } from "./profile-fields.js";
import { InputError } from "../../src/spec/errors.js";
import { microBatchCount, resolvePlan } from "../../src/spec/plan.js";
import type { Tf } from "../../src/executor/model/ops.js";
import { loadBackend } from "../../src/executor/run/backend.js";
import { fitShapes } from "../../src/executor/measure/calibrate.js";
import { shapeOf } from "../helpers.js";
import { tinyGpt } from "./check.js";

const base: DeviceProfile = {
  version: 1, measuredAt: "2026-11-24T00:00:00Z", machine: { cpus: 2, cpuModel: "test", node: "v20", platform: "linux" }, backend: "wasm",
  matmul: [{ n: 64, seconds: 1e-4, flopsPerSecond: 5e9 }], peakFlopsPerSecond: 5e9, opOverheadSeconds: 1e-6, elementwiseBytesPerSecond: 1e9,
  memcpyBytesPerSecond: 8e9, collectiveBytesPerSecond: 3e9, collectiveLatencySeconds: 3e-6, fit: [],
};
const sample = (f: number, b: number, w: number) => ({ forwardSeconds: f, backwardInputSeconds: b, backwardWeightSeconds: w });
const shares = { forward: 0.25, backwardInput: 0.5, backwardWeight: 0.25 };
const withShares: DeviceProfile = { ...base, layerPasses: { shares, measured: [{ shape: "h64 s32 L2", ...sample(1e-3, 2e-3, 1e-3) }] } };

describe("layer pass shares: calibrate's measured split of a layer between forward, B and W", () => {
  it("are the median share of each pass over the measured sizes, renormalised to sum to 1", () => {
    const s = passShares([sample(1, 2, 1), sample(1, 3, 1), sample(2, 2, 1)]);
    // shares per sample: F .25 .2 .4, B .5 .6 .4, W .25 .2 .2; the upper medians .25, .5, .2, over 0.95
    expect(s.forward).toBeCloseTo(0.25 / 0.95, 12);
    expect(s.backwardInput).toBeCloseTo(0.5 / 0.95, 12);
    expect(s.backwardWeight).toBeCloseTo(0.2 / 0.95, 12);
    expect(() => passShares([])).toThrow(RangeError);
  });

  it("split the roofline's layer time between the passes and keep its total", () => {
    const model = tinyGpt(4);
    const plan = resolvePlan(model, profileShape(base, 2), { pp: 2, schedule: "zb-h1", flashAttention: false });
    const roofline = layerTimes(model, profileGpu(base), plan);
    const split = layerTimes(model, profileGpu(withShares), plan);
    const total = (t: typeof roofline) => t.forwardSeconds + t.backwardInputSeconds + t.backwardWeightSeconds;
    expect(total(split)).toBeCloseTo(total(roofline), 15);
    expect(split.forwardSeconds / total(split)).toBeCloseTo(0.25, 12);
    expect(split.backwardInputSeconds / total(split)).toBeCloseTo(0.5, 12);
    expect(split.backwardWeightSeconds / total(split)).toBeCloseTo(0.25, 12);
    // the roofline's own split is not that one, so the shares change something
    expect(roofline.backwardInputSeconds / roofline.forwardSeconds).not.toBeCloseTo(2, 1);
    // what other terms read is the roofline's
    expect(split.attentionCoreForwardSeconds).toBe(roofline.attentionCoreForwardSeconds);
  });

  it("are checked on reading a profile: each in (0, 1], summing to 1, with the measured passes", () => {
    const bad = (layerPasses: unknown) => profileSectionVerdict(base, "layerPasses", layerPasses);
    expect(bad(withShares.layerPasses)).toBe("accepted");
    expect(bad({ ...withShares.layerPasses, shares: { forward: 0.5, backwardInput: 0.5, backwardWeight: 0.25 } })).toMatch(/layerPasses\.shares\.forward.*sum to 1\.25/);
    expect(bad({ ...withShares.layerPasses, shares: { forward: 0, backwardInput: 0.75, backwardWeight: 0.25 } })).toMatch(/layerPasses\.shares\.forward/);
    expect(bad({ shares })).toMatch(/layerPasses\.measured/);
  });
});

describe("ZB-V's order for the passes as priced", () => {
  const model = tinyGpt(4);
  const zbv = (input = {}) => resolvePlan(model, profileShape(base, 2), { pp: 2, schedule: "zb-v", flashAttention: false, ...input });

  it("takes the GPU's priced layer: B and W in forwards, on quarters", () => {
    const plan = zbv();
    expect(pricedVPassRatios(model, profileGpu(withShares), plan)).toEqual({ backward: 2, weight: 1 });
    // Without measured shares (the roofline's passes): the nearest quarters; with them, the fitted ones.
    const t = layerTimes(model, profileGpu(base), plan);
    expect(pricedVPassRatios(model, profileGpu(base), plan)).toEqual(vPassRatios(t.forwardSeconds, t.backwardInputSeconds, t.backwardWeightSeconds));
    const m = layerTimes(model, profileGpu(withShares), plan);
    expect(pricedVPassRatios(model, profileGpu(withShares), plan)).toEqual(fittedVPassRatios(2, microBatchCount(plan), m.forwardSeconds, m.backwardInputSeconds, m.backwardWeightSeconds));
    // full recomputation runs the forward again before B
    const full = { ...plan, recompute: "full" as const };
    expect(pricedVPassRatios(model, profileGpu(withShares), full)).toEqual({ backward: 3, weight: 1 });
  });

  it("takes, of the quarters around each priced ratio, those whose order runs the real lengths soonest", () => {
    // This machine's TensorFlow.js layer (calibrate, 2026-11-24): B 2.04 and W 0.36 forwards. The nearest
    // quarters (2, 0.25) give an order that idles more than the order for (2, 0.5), measured too (src/executor/TIME-RECORD.md, "How a layer's time splits between its passes").
    const real = [1, 2.04, 0.36];
    const lengthOf = (r: { backward: number; weight: number }) => replayLength(zbvOrder(2, 8, r).programs, 2, 8, real);
    expect(vPassRatios(1, 2.04, 0.36)).toEqual({ backward: 2, weight: 0.25 });
    expect(fittedVPassRatios(2, 8, 1, 2.04, 0.36)).toEqual({ backward: 2, weight: 0.5 });
    expect(lengthOf({ backward: 2, weight: 0.5 })).toBeLessThan(lengthOf({ backward: 2, weight: 0.25 }));
    // In general: one of the neighbouring quarters, never slower than the nearest rounding (property). The
    // fit compares the orders on the ratios to 1/32 of a forward (its cache's key), so the property draws
    // those: with b and w between 32nds, an order can replay the rounded lengths faster and the exact ones
    // slower (p 2, m 5, b 1.625, w 0.609375 = 19.5/32: 36.42 against 36.39 forwards).
    const in32nds = (min: number, max: number) => fc.integer({ min: Math.round(32 * min), max: Math.round(32 * max) }).map((k) => k / 32);
    fc.assert(fc.property(fc.constantFrom(2, 3, 4), fc.integer({ min: 2, max: 16 }), in32nds(0.3, 4), in32nds(0.1, 2), (p, m, b, w) => {
      const got = fittedVPassRatios(p, m, 1, b, w);
      const runs = (r: { backward: number; weight: number }) => replayLength(zbvOrder(p, m, r).programs, p, m, [1, b, w]);
      expect(Math.abs(got.backward - b)).toBeLessThanOrEqual(0.25);
      expect(Math.abs(got.weight - Math.max(0.25, w))).toBeLessThanOrEqual(0.25);
      expect(runs(got)).toBeLessThanOrEqual(runs(vPassRatios(1, b, w)) + 1e-9);
    }), { numRuns: 60 });
  });

  it("is what execute runs a ZB-V plan with (its profile's), unless the plan gives its own; other schedules unchanged", () => {
    const plan = zbv();
    expect(planVPassRatios(model, plan)).toEqual({ backward: 1, weight: 1 });
    const priced = withPricedPasses(model, withShares, 2, plan);
    expect(priced.vPassRatios).toEqual({ backward: 2, weight: 1 });
    expect(planVPassRatios(model, priced)).toEqual({ backward: 2, weight: 1 });
    const pinned = zbv({ vPassRatios: { backward: 1.5, weight: 0.5 } });
    expect(withPricedPasses(model, withShares, 2, pinned).vPassRatios).toEqual({ backward: 1.5, weight: 0.5 });
    const oneF = resolvePlan(model, profileShape(base, 2), { pp: 2, schedule: "1f1b", flashAttention: false });
    expect(withPricedPasses(model, withShares, 2, oneF)).toBe(oneF);
  });

  it("refuses pass lengths on another schedule, or off the quarter grid, naming the field", () => {
    const shape = shapeOf("dgx-h100", 8);
    const err = (input: object) => {
      try {
        resolvePlan(tinyGpt(8), shape, { pp: 2, flashAttention: false, ...input });
      } catch (e) {
        return e instanceof InputError ? e.message : String(e);
      }
      return "accepted";
    };
    expect(err({ schedule: "1f1b", vPassRatios: { backward: 2, weight: 1 } })).toMatch(/vPassRatios = "2,1".*left out unless the schedule is zb-v/);
    expect(err({ schedule: "zb-v", vPassRatios: { backward: 2, weight: 0.3 } })).toMatch(/vPassRatios = "2,0.3".*W = 0.3.*multiple of 0.25/);
    expect(err({ schedule: "zb-v", vPassRatios: { backward: 9, weight: 1 } })).toMatch(/B = 9/);
    expect(err({ schedule: "zb-v", vPassRatios: { backward: 2, weight: 0.5 } })).toBe("accepted");
  });
});

describe("one layer's passes measured on the wasm backend", () => {
  let tf: Tf;
  beforeAll(async () => {
    tf = (await loadBackend("wasm", 1)).tf;
  });

  // The layer, and the input embedding (B: the position table's gradient; W: the word table's).
  for (const [what, time] of [["the fit shape's first layer", layerPassSeconds], ["the input embedding", embeddingPassSeconds]] as const) {
    it(`times the forward, B and W of ${what}, leaving no tensor behind`, () => {
      const s = fitShapes(tinyGpt(2))[1]!; // h64 s8, the smallest
      const before = tf.memory().numTensors;
      const t = time(tf, s.model, s.plan, 3);
      expect(tf.memory().numTensors).toBe(before);
      for (const x of [t.forwardSeconds, t.backwardInputSeconds, t.backwardWeightSeconds]) {
        expect(x).toBeGreaterThan(0);
        expect(x).toBeLessThan(1);
      }
    });
  }

  it("times tensor-parallel rank 0's share of a layer, with and without SP, leaving no tensor behind", () => {
    const s = fitShapes(tinyGpt(2))[1]!;
    for (const sequenceParallel of [true, false]) {
      const before = tf.memory().numTensors;
      const t = layerPassSeconds(tf, s.model, { ...s.plan, tp: 2, sequenceParallel }, 3);
      expect(tf.memory().numTensors).toBe(before);
      for (const x of [t.forwardSeconds, t.backwardInputSeconds, t.backwardWeightSeconds]) {
        expect(x).toBeGreaterThan(0);
        expect(x).toBeLessThan(1);
      }
    }
    // Its GEMM weights are rank 0's half: the first use prices what the rank holds.
    const r = firstUseSeconds(tf, s.model, { ...s.plan, tp: 2 }, 2);
    expect(r.params).toBe((12 * s.model.hiddenSize ** 2) / 2);
  });

  it("a shape-only group gives each collective's output shape and moves nothing", () => {
    const g = shapeOnlyGroup(tf, 4);
    const x = tf.ones([8, 3]);
    const shapes = [g.allGather(x, "t"), g.reduceScatter(x, "t"), g.allReduce(x, "t"), g.allReduceMax(x, "t")].map((y) => {
      const shape = y.shape;
      y.dispose();
      return shape;
    });
    expect(shapes).toEqual([[32, 3], [2, 3], [8, 3], [8, 3]]);
    // Outputs of one shape are handles on one kept tensor: a second gather adds no data.
    const kept = tf.memory().numBytes;
    g.allGather(x, "t").dispose();
    expect(tf.memory().numBytes).toBe(kept);
    g.dispose();
    x.dispose();
    expect(tf.memory().numBytes).toBe(kept - 4 * (32 * 3 + 2 * 3) - 4 * 8 * 3);
  });

  it("times a layer's forward with new weight tensors against used ones, and counts the GEMM weights as the cost model does", () => {
    const s = fitShapes(tinyGpt(2))[1]!;
    const before = tf.memory().numTensors;
    const r = firstUseSeconds(tf, s.model, s.plan, 2);
    expect(tf.memory().numTensors).toBe(before);
    expect(r.seconds).toBeGreaterThanOrEqual(0);
    expect(r.seconds).toBeLessThan(1);
    const h = s.model.hiddenSize;
    expect(r.params).toBe(12 * h * h); // QKV 3h^2, projection h^2, MLP 2 x 4h^2
    // the cost model's layer at one second per weight prices exactly those weights
    const perWeight = { ...profileGpu(base), efficiency: { ...profileGpu(base).efficiency, weightFirstUseSecondsPerParam: 1 } };
    expect(layerTimes(s.model, perWeight, s.plan).firstUseSeconds).toBe(r.params);
  });
});

describe("new weights' first use in a device profile", () => {
  const firstUse = { secondsPerParam: 4e-9, measured: [{ shape: "h64 s32 L2", params: 49152, seconds: 2e-4 }] };

  it("is fitted through the origin over the measured layers", () => {
    // seconds x params: 1 + 6 = 7; params squared: 1e8 + 4e8
    expect(firstUsePerParam([{ seconds: 1e-4, params: 1e4 }, { seconds: 3e-4, params: 2e4 }])).toBeCloseTo(7 / 5e8, 20);
    expect(() => firstUsePerParam([])).toThrow(RangeError);
  });

  it("becomes the GPU's seconds per weight, slowed with the ranks as the other fitted times are", () => {
    const p: DeviceProfile = { ...base, weightFirstUse: firstUse, concurrency: { ranks: 2, aloneSeconds: 1, concurrentSeconds: 1.5, fittedSeconds: 1, slowdown: 1.5 } };
    expect(profileGpu(p).efficiency.weightFirstUseSecondsPerParam).toBe(4e-9);
    expect(profileGpu(base).efficiency.weightFirstUseSecondsPerParam).toBeUndefined();
    expect(profileShape(p, 2).spec.gpu.efficiency.weightFirstUseSecondsPerParam).toBeCloseTo(6e-9, 20);
  });

  it("is checked on reading a profile", () => {
    const bad = (weightFirstUse: unknown) => profileSectionVerdict(base, "weightFirstUse", weightFirstUse);
    expect(bad(firstUse)).toBe("accepted");
    expect(bad({ ...firstUse, secondsPerParam: -1 })).toMatch(/weightFirstUse\.secondsPerParam/);
    expect(bad({ secondsPerParam: 1e-9 })).toMatch(/weightFirstUse\.measured/);
    expect(bad({ ...firstUse, measured: [{ shape: "h64", params: 0.5, seconds: 1e-4 }] })).toMatch(/weightFirstUse\.measured\[0\]\.params/);
  });
});
