import { describe, expect, it } from "vitest";
import { frameworkFlags } from "../../src/cli/format.js";
import { layerTimes } from "../../src/planner/cost/compute.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { planFor, shapeOf } from "../helpers.js";

/** PyTorch's non-reentrant checkpoint stops recomputing before a layer's last product (plan.recomputeEarlyStop). */
const shape = shapeOf("dgx-h100", 8);
const input = { tp: 1, pp: 1, dp: 8, microBatch: 2, globalBatch: 64, zero: 3, recompute: "full", sequenceParallel: false } as const;

describe("early stop of the recomputation", () => {
  it("takes the down projection of every recomputed layer out of the recomputation, and nothing else", () => {
    const off = planFor("llama3-8b", shape, input);
    const on = planFor("llama3-8b", shape, { ...input, recomputeEarlyStop: true });
    expect(on.plan.recomputeEarlyStop).toBe(true);
    expect(off.plan.recomputeEarlyStop).toBeUndefined();
    expect(frameworkFlags(on.plan)).toContain("--recompute-early-stop");
    expect(frameworkFlags(off.plan)).not.toContain("--recompute-early-stop");
    const layer = layerTimes(on.model, shape.spec.gpu, on.plan);
    // The down projection: tokens x ffn -> hidden, a third of a SwiGLU MLP's forward GEMM FLOPs.
    expect(layer.lastGemmSeconds).toBeGreaterThan(0.1 * layer.forwardSeconds);
    expect(layer.lastGemmSeconds).toBeLessThan(0.5 * layer.forwardSeconds);
    const a = planCosts(off.model, shape, off.plan).stages[0]!;
    const b = planCosts(on.model, shape, on.plan).stages[0]!;
    expect(a.recomputeSeconds - b.recomputeSeconds).toBeCloseTo(on.plan.layersPerStage[0]! * layer.lastGemmSeconds, 9);
    expect(b.forwardSeconds).toBeCloseTo(a.forwardSeconds, 12);
    expect(b.backwardInputSeconds).toBeCloseTo(a.backwardInputSeconds, 12);
  });

  it("changes nothing without recomputation, and only the recomputed layers under partial recomputation", () => {
    const none = { ...input, recompute: "none" } as const;
    const a = planFor("llama3-8b", shape, none);
    const b = planFor("llama3-8b", shape, { ...none, recomputeEarlyStop: true });
    expect(planCosts(b.model, shape, b.plan).stages[0]!.recomputeSeconds).toBe(planCosts(a.model, shape, a.plan).stages[0]!.recomputeSeconds);
    const part = { ...none, recomputeLayersPerStage: [8] };
    const c = planFor("llama3-8b", shape, part);
    const d = planFor("llama3-8b", shape, { ...part, recomputeEarlyStop: true });
    const layer = layerTimes(d.model, shape.spec.gpu, d.plan);
    const diff = planCosts(c.model, shape, c.plan).stages[0]!.recomputeSeconds - planCosts(d.model, shape, d.plan).stages[0]!.recomputeSeconds;
    expect(diff).toBeCloseTo(8 * layer.lastGemmSeconds, 9);
  });
});
