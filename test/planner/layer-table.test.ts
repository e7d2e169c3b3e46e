import { describe, expect, it } from "vitest";
import { builtinNames, clusterLoader, loadModel } from "../../src/cli/catalog.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { resolvePlan, type PlanInput } from "../../src/spec/plan.js";
import type { ClusterShape, ModelSpec } from "../../src/spec/types.js";
import { calibratedCluster, IDENTITY, type CalibrationScales } from "../../src/validate/calibration.js";
import { readCalibration, readMeasurements } from "../../src/validate/files.js";
import { prepareRecords, type PreparedCase } from "../../src/validate/predict.js";

/**
 * Korthikanti et al. 2022, Table 4: forward and backward time of one transformer layer of their 22B GPT
 * (tp 8, micro-batch 4, sequence 2048, fp16, A100 80GB) under each recomputation mode, measured
 * (models/measurements/korthikanti-2022.jsonl r1435-r1439). The cost model's layer, with its tensor-parallel
 * collectives, is set up exactly as `meshplan validate` sets up the same paper's end-to-end run r0045.
 */
const ROWS: Record<string, { id: string; input: Partial<PlanInput> }> = {
  none: { id: "r1435", input: { recompute: "none", sequenceParallel: false } },
  sp: { id: "r1436", input: { recompute: "none", sequenceParallel: true } },
  full: { id: "r1437", input: { recompute: "full", sequenceParallel: false } },
  selective: { id: "r1438", input: { recompute: "selective", sequenceParallel: false } },
  selectiveSp: { id: "r1439", input: { recompute: "selective", sequenceParallel: true } },
};

const records = readMeasurements();
const measuredMs = (id: string): number => {
  const ms = records.find((r) => r.id === id)?.measured.other.per_layer_combined_ms;
  if (ms === undefined) throw new Error(`${id}: no per-layer time in models/measurements/korthikanti-2022.jsonl`);
  return ms;
};
const endToEnd: PreparedCase = prepareRecords(records.filter((r) => r.id === "r0045"), builtinNames("model").map(loadModel), clusterLoader()).prepared[0]!;

/** One layer's forward + backward (recomputation included) and its exposed tp collectives, in ms: a stage of L layers less one of L - 1. */
function layerMs(scales: CalibrationScales, input: Partial<PlanInput>): number {
  const shape: ClusterShape = { ...endToEnd.shape, spec: calibratedCluster(endToEnd.shape.spec, scales) };
  const stage = (layers: number) => {
    const model: ModelSpec = { ...endToEnd.case.model, layers };
    const plan = resolvePlan(model, shape, { ...endToEnd.case.plan, ...input, layersPerStage: undefined, recomputeLayersPerStage: undefined });
    const s = planCosts(model, shape, plan).stages[0]!;
    return s.forwardSeconds + s.backwardInputSeconds + s.backwardWeightSeconds + s.recomputeSeconds + s.tp.forward.seconds + s.tp.backward.seconds;
  };
  const layers = endToEnd.case.model.layers;
  return (stage(layers) - stage(layers - 1)) * 1e3;
}

describe("one layer against Korthikanti et al. 2022 Table 4", () => {
  it("sets up the paper's 22B layer", () => {
    expect(endToEnd.case.model.hiddenSize).toBe(6144);
    expect(endToEnd.plan).toMatchObject({ tp: 8, microBatch: 4, seqLen: 2048, precision: "fp16", flashAttention: false });
  });

  it("costs each recomputation mode relative to none as measured, within 5 points (sourced priors, no calibration)", () => {
    const none = layerMs(IDENTITY, ROWS.none!.input);
    for (const [mode, row] of Object.entries(ROWS)) {
      const predicted = layerMs(IDENTITY, row.input) / none;
      const measured = measuredMs(row.id) / measuredMs(ROWS.none!.id);
      expect(Math.abs(predicted - measured), `${mode}: ${predicted.toFixed(3)} x none, measured ${measured.toFixed(3)}`).toBeLessThan(0.05);
    }
  });

  it("charges selective recomputation the attention core's softmax and dropout too: at least half the measured 7%", () => {
    const extra = layerMs(IDENTITY, ROWS.selective!.input) / layerMs(IDENTITY, ROWS.none!.input) - 1;
    expect(extra).toBeGreaterThan(0.5 * (measuredMs("r1438") / measuredMs("r1435") - 1));
  });

  it("predicts every row's time within 8% with the fitted calibration", () => {
    const calibration = readCalibration();
    if (calibration === undefined) throw new Error("models/hardware/calibration.json is missing");
    for (const [mode, row] of Object.entries(ROWS)) {
      const ms = layerMs(calibration.scales, row.input);
      expect(Math.abs(ms / measuredMs(row.id) - 1), `${mode}: ${ms.toFixed(2)} ms, measured ${measuredMs(row.id)} ms`).toBeLessThan(0.08);
    }
  });
});
