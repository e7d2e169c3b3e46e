import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolveLinks } from "../../src/planner/cost/communication.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { tiedEmbeddingSync } from "../../src/planner/cost/tied.js";
import { simulateEstimate } from "../../src/simulator/simulate.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

describe("a tied embedding's two copies, summed once per step (Megatron-LM's embedding group, DeepSpeed's ReduceTiedGrads)", () => {
  const base = loadModel("gpt3-175b");
  const shape = shapeOf("dgx-a100-80gb", 1024);
  const planOf = (tied: boolean, input = {}) => {
    const model = { ...base, tiedEmbeddings: tied };
    return { model, plan: resolvePlan(model, shape, { tp: 8, pp: 16, globalBatch: 1536, seqLen: 2048, flashAttention: false, ...input }) };
  };

  it("all-reduces the rank's V/tp x h gradient between the first stage and the head's, over the pipeline's link", () => {
    const { model, plan } = planOf(true);
    const link = resolveLinks(plan, shape).pp;
    const n = (model.vocabSize / 8) * model.hiddenSize * 4; // fp32 gradients (bf16 plan)
    for (const stage of [0, 15]) {
      const c = tiedEmbeddingSync(model, plan, link, stage);
      // two members: each sends the whole buffer once, in two ring steps
      expect(c.bytes).toBeCloseTo(n, 0);
      expect(c.seconds).toBeCloseTo(2 * link.latencySeconds + n / link.bytesPerSecond, 12);
    }
    expect(tiedEmbeddingSync(model, plan, link, 7).bytes).toBe(0);
    const untied = planOf(false);
    expect(tiedEmbeddingSync(untied.model, untied.plan, link, 0).bytes).toBe(0);
    // one stage, or ZB-V (the head on the first stage): no copy, nothing to sum
    const one = resolvePlan(model, shapeOf("dgx-a100-80gb", 8), { tp: 8, globalBatch: 8, seqLen: 2048 });
    expect(tiedEmbeddingSync(model, one, link, 0).bytes).toBe(0);
    const v = planOf(true, { schedule: "zb-v", pp: 8, globalBatch: 1024 }).plan;
    expect(tiedEmbeddingSync(model, v, link, 0).bytes).toBe(0);
  });

  it("adds its time to the step as pipeline traffic, analytically and in the simulator alike", () => {
    const tied = planOf(true);
    const untied = planOf(false);
    const sync = planCosts(tied.model, shape, tied.plan).stages[0]!.tiedSync.seconds;
    expect(sync).toBeGreaterThan(0);
    for (const run of [estimate, simulateEstimate]) {
      const a = run(tied.model, shape, tied.plan);
      const b = run(untied.model, shape, untied.plan);
      // the untied head's extra parameters change nothing off the last stage's compute here: the difference is the sum
      expect(a.time.breakdown.ppCommSeconds - b.time.breakdown.ppCommSeconds).toBeCloseTo(sync, 9);
    }
  });

  it("counts its bytes on the stages that sum, where they are the busiest", () => {
    const { model, plan } = planOf(true, { pp: 2, globalBatch: 64 });
    const costs = planCosts(model, shape, plan);
    const e = estimate(model, shape, plan);
    const sends = costs.microBatches * costs.ppTransfer.bytes; // one send per micro-batch each way's end
    expect(e.communication.bytesPerGpuPerStep.pp).toBeCloseTo(sends + costs.stages[0]!.tiedSync.bytes, 0);
  });
});
