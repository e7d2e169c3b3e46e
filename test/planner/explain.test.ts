import { describe, expect, it } from "vitest";
import { estimate } from "../../src/planner/cost/estimate.js";
import { explainRanking, searchSummary } from "../../src/planner/explain/explain.js";
import { planFor, shapeOf } from "../helpers.js";

describe("explainRanking: the runner-up in words", () => {
  const shape = shapeOf("dgx-h100", 16);
  const ranked = (layouts: number[][]) => {
    const plans = layouts.map((layersPerStage) => planFor("llama3-8b", shape, { tp: 2, pp: 2, dp: 4, microBatch: 1, globalBatch: 64, layersPerStage }));
    const estimates = plans.map(({ model, plan }) => estimate(model, shape, plan));
    return { model: plans[0]!.model, estimates };
  };

  it("names what differs when the next plan reads the same as the best (another layer layout)", () => {
    const { model, estimates } = ranked([[16, 16], [18, 14]]);
    const last = explainRanking(model, shape, estimates).at(-1)!;
    expect(last).toContain("the same split with layers per stage 18/14 where the best has 16/16");
    expect(last).not.toContain("(tp 2 x pp 2");
  });

  it("describes a runner-up with another split by its own description", () => {
    const { model, estimates } = ranked([[16, 16]]);
    const other = planFor("llama3-8b", shape, { tp: 4, pp: 1, dp: 4, microBatch: 1, globalBatch: 64 });
    const last = explainRanking(model, shape, [estimates[0]!, estimate(model, shape, other.plan)]).at(-1)!;
    expect(last).toMatch(/^The next plan \(tp 4 x pp 1 x dp 4, micro-batch 1, ZeRO \d, recompute none\) is /);
  });
});

describe("searchSummary: what the search went through", () => {
  it("counts the fits among the plans it evaluated, apart from those a speed bound ruled out", () => {
    expect(searchSummary({ searched: 12148, feasible: 967, bounded: 8864 })).toBe("12,148 plans searched, 967 of 3,284 evaluated fit");
    expect(searchSummary({ searched: 40, feasible: 12, bounded: 0 })).toBe("40 plans searched, 12 fit");
  });
});

describe("explainRanking under hybrid sharding", () => {
  it("names both levels of the gradient reduction: inside the shard group and across the replicas", () => {
    const shape = shapeOf("dgx-h100", 64);
    const { model, plan } = planFor("llama3-8b", shape, { tp: 1, pp: 1, dp: 64, zero: 3, shardGroup: 8, globalBatch: 64 });
    const text = explainRanking(model, shape, [estimate(model, shape, plan)]).join("\n");
    expect(text).toMatch(/reduce-scattered 8 ways over nvlink4 and all-reduced 8 ways across the replicas over infiniband-ndr/);
  });
});
