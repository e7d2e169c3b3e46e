import { describe, expect, it } from "vitest";
import { builtinNames, clusterLoader, loadCluster, loadModel } from "../../src/cli/catalog.js";
import { fitBaseline } from "../../src/validate/baseline.js";
import { calibratedCluster, IDENTITY, parseCalibration } from "../../src/validate/calibration.js";
import { readMeasurements } from "../../src/validate/files.js";
import { comparable, fitScales, foldSplit, heldOutFolds } from "../../src/validate/fit.js";
import { minimize } from "../../src/math/nelder-mead.js";
import { prepareRecords, type PreparedCase } from "../../src/validate/predict.js";

const builtins = builtinNames("model").map(loadModel);
const cluster = clusterLoader();
const SOURCES = ["megatron-sc21", "megatron-gpt2-2020-readme", "korthikanti-2022", "megatron-h100-2024"];

function prepared(): PreparedCase[] {
  return comparable(prepareRecords(readMeasurements().filter((x) => SOURCES.includes(x.source)), builtins, cluster).prepared);
}

/** The same cases with one source's measured throughput multiplied by `factor`. */
function scaled(cases: readonly PreparedCase[], source: string, factor: number): PreparedCase[] {
  return cases.map((p) => {
    if (p.case.source !== source) return p;
    const m = p.case.measurement!;
    return { ...p, case: { ...p.case, measurement: { ...m, tokensPerSecondPerGpu: m.tokensPerSecondPerGpu * factor } } };
  });
}

const FAST = { maxEvaluations: 60 };

describe("held out by source", () => {
  const cases = prepared();

  it("a fold's training set has no record of the held-out source", () => {
    for (const s of SOURCES) {
      const { train, test } = foldSplit(cases, s);
      expect(test.length).toBeGreaterThan(0);
      expect(train.some((c) => c.case.source === s)).toBe(false);
      expect(train.length + test.length).toBe(cases.length);
    }
  });

  it("changing the held-out source's measurements leaves its fold (model and baseline) unchanged", () => {
    const held = "megatron-sc21";
    const before = heldOutFolds(cases, FAST).find((f) => f.heldOut === held)!;
    const after = heldOutFolds(scaled(cases, held, 3), FAST).find((f) => f.heldOut === held)!;
    expect(after.scales).toEqual(before.scales);
    expect(after.trainedOn).not.toContain(held);
    expect(fitBaseline(foldSplit(scaled(cases, held, 3), held).train)).toEqual(fitBaseline(foldSplit(cases, held).train));
    // ...while a fit that includes the source does move.
    expect(fitScales(scaled(cases, held, 3), FAST).scales).not.toEqual(fitScales(cases, FAST).scales);
  });

  it("the baseline is one MFU per GPU type, the median of its training records", () => {
    const b = fitBaseline(cases);
    expect(Object.keys(b.byType).sort()).toEqual(["a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm"]);
    for (const mfu of Object.values(b.byType)) expect(mfu).toBeGreaterThan(0.2);
  });
});

describe("the calibration layer", () => {
  it("identity scales give the priors back; fractions are capped at 1", () => {
    const spec = loadCluster("dgx-h100");
    const same = calibratedCluster(spec, IDENTITY);
    expect(same.gpu.efficiency).toMatchObject(spec.gpu.efficiency);
    expect(same.intraNode).toEqual(spec.intraNode);
    const up = calibratedCluster(spec, { ...IDENTITY, matmul: 3, link: 0.5 });
    expect(up.gpu.efficiency.matmulMax).toBe(1);
    expect(up.intraNode.busBandwidthEfficiency).toBeCloseTo(spec.intraNode.busBandwidthEfficiency / 2, 12);
  });

  it("the overlap scale multiplies the GPU's contention prior; a file without it leaves the prior as it is", () => {
    const spec = loadCluster("dgx-a100-80gb");
    const prior = spec.gpu.efficiency.commOverlapSlowdown!;
    expect(prior).toBeGreaterThan(0);
    expect(calibratedCluster(spec, { ...IDENTITY, overlap: 2 }).gpu.efficiency.commOverlapSlowdown).toBeCloseTo(2 * prior, 12);
    const noContention = { ...spec, gpu: { ...spec.gpu, efficiency: { matmulMax: 0.8, matmulOverheadSeconds: 0, attentionMax: 0.6, memoryBandwidth: 0.9 } } };
    expect(calibratedCluster(noContention, { ...IDENTITY, overlap: 2 }).gpu.efficiency).not.toHaveProperty("commOverlapSlowdown");
    const { overlap: _, ...older } = { ...IDENTITY, matmul: 0.7 };
    expect(parseCalibration({ scales: older, folds: [] }).scales).toMatchObject({ matmul: 0.7, overlap: 1 });
    expect(() => parseCalibration({ scales: { ...IDENTITY, overlap: 0 }, folds: [] })).toThrow(/scales\.overlap/);
  });

  it("rejects a calibration file with a bad scale, naming the field", () => {
    expect(() => parseCalibration({ scales: { ...IDENTITY, attention: -1 }, folds: [] })).toThrow(/scales\.attention/);
    expect(parseCalibration({ scales: IDENTITY, folds: [{ heldOut: "x", scales: IDENTITY, trainedOn: ["y"] }] }).folds).toHaveLength(1);
  });

  it("Nelder-Mead finds the minimum of a quadratic", () => {
    const r = minimize((x) => (x[0]! - 1) ** 2 + 2 * (x[1]! + 0.5) ** 2, [0, 0], { step: 0.5, maxEvaluations: 400, tolerance: 1e-12 });
    expect(r.x[0]).toBeCloseTo(1, 4);
    expect(r.x[1]).toBeCloseTo(-0.5, 4);
  });
});
