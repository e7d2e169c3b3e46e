import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { stageWeightGradInputBytes } from "../../src/planner/cost/memory.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

describe("a split backward through fully recomputed layers (ZB-H1, ZB-V)", () => {
  const model = loadModel("llama3-8b");
  const shape = shapeOf("dgx-h100", 8);
  const plan = (input: object) => resolvePlan(model, shape, { pp: 4, tp: 2, schedule: "zb-h1", globalBatch: 64, seqLen: 4096, ...input });

  it("keeps the linears' inputs from the rebuilt forward until W: the attention output, the MLP activation and, without SP, the two norms' outputs", () => {
    const x = 4096; // tokens per micro-batch (micro-batch 1, cp 1)
    const q = 4096 / 2;
    const f = 14336 / 2;
    for (const sp of [false, true]) {
      const none = plan({ recompute: "none", sequenceParallel: sp });
      const full = plan({ recompute: "full", sequenceParallel: sp });
      const layers = full.recomputeLayersPerStage[1]!;
      expect(layers).toBe(full.layersPerStage[1]);
      const extra = stageWeightGradInputBytes(model, full, 1) - stageWeightGradInputBytes(model, none, 1);
      expect(extra).toBe(layers * 2 * x * (q + f + (sp ? 0 : 2 * model.hiddenSize)));
    }
    // no split backward, nothing kept for W
    expect(stageWeightGradInputBytes(model, plan({ schedule: "1f1b", recompute: "full" }), 1)).toBe(0);
  });
});
