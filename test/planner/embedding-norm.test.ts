import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { layerActivationBytes } from "../../src/planner/cost/activations.js";
import { spReplicatedGradCost, resolveLinks } from "../../src/planner/cost/communication.js";
import { embeddingNormBytes, layerParamsPerRank, stageActivationBytes, stageParams } from "../../src/planner/cost/memory.js";
import { embeddingParams } from "../../src/planner/cost/params.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

describe("a norm after the input embedding (BLOOM's --embed-layernorm)", () => {
  const base = loadModel("gpt3-175b");
  const withNorm = { ...base, embeddingNorm: true };
  const shape = shapeOf("dgx-a100-80gb", 64);
  const plan = resolvePlan(base, shape, { tp: 4, pp: 8, microBatch: 2, globalBatch: 64, seqLen: 2048, flashAttention: false, recompute: "full", sequenceParallel: false });
  const h = base.hiddenSize;

  it("adds a norm's parameters to the embedding, on the first stage only", () => {
    expect(embeddingParams(withNorm) - embeddingParams(base)).toBe(2 * h); // LayerNorm: gain and bias
    const per = layerParamsPerRank(base, plan);
    expect(stageParams(withNorm, plan, 0, per).dense - stageParams(base, plan, 0, per).dense).toBe(2 * h);
    expect(stageParams(withNorm, plan, 1, per).dense).toBe(stageParams(base, plan, 1, per).dense);
  });

  it("keeps its 16-bit input per micro-batch in flight on the first stage, full recomputation or not", () => {
    const perMicroBatch = 2 * 2 * 2048 * h; // 2 bytes x micro-batch 2 x 2048 tokens x h, whole on every tp rank
    expect(embeddingNormBytes(withNorm, plan, 0)).toBe(perMicroBatch);
    expect(embeddingNormBytes(withNorm, plan, 1)).toBe(0);
    const a = layerActivationBytes(base, plan);
    // 1F1B's first stage holds pp = 8 micro-batches (min(pp, m), m = 64 / (2 x 4) = 8)
    expect(stageActivationBytes(withNorm, plan, 0, 8, a) - stageActivationBytes(base, plan, 0, 8, a)).toBe(8 * perMicroBatch);
    const sp = { ...plan, sequenceParallel: true };
    expect(embeddingNormBytes(withNorm, sp, 0)).toBe(perMicroBatch / 4);
  });

  it("under SP its gradients are summed over tp with the other replicated weights'", () => {
    const sp = resolvePlan(base, shape, { tp: 4, pp: 8, globalBatch: 64, seqLen: 2048 });
    const links = resolveLinks(sp, shape);
    const extra = spReplicatedGradCost(withNorm, sp, links, 0).bytes - spReplicatedGradCost(base, sp, links, 0).bytes;
    expect(extra).toBeCloseTo((2 * (4 - 1) * 4 * 2 * h) / 4, 6); // all-reduce of 2h fp32 gradients over 4 ranks
  });
});
