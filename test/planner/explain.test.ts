import { describe, expect, it } from "vitest";
import { estimate } from "../../src/planner/cost/estimate.js";
import { explainRanking, layersLabel, searchSummary } from "../../src/planner/explain/explain.js";
import { gptModel, planFor, shapeOf } from "../helpers.js";

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

describe("explainRanking: what it says is true of the numbers", () => {
  it("a runner-up within 0.05% is compared by its memory, which may be less (it said 'ranked lower for using more memory' of one using 23 GiB less)", () => {
    const shape = shapeOf("dgx-h100", 16);
    const lean = planFor("llama3-8b", shape, { tp: 2, pp: 1, dp: 8, microBatch: 1, globalBatch: 64, zero: 1 });
    const win = estimate(lean.model, shape, lean.plan);
    // the same plan with 2 GiB more memory and 0.01% less speed, then with 2 GiB less
    const heavier = { ...win, memory: { ...win.memory, peakBytesPerGpu: win.memory.peakBytesPerGpu + 2 * 2 ** 30 }, throughput: { ...win.throughput, tokensPerSecond: win.throughput.tokensPerSecond * 0.9999 } };
    const lighter = { ...heavier, memory: { ...win.memory, peakBytesPerGpu: win.memory.peakBytesPerGpu - 2 * 2 ** 30 } };
    expect(explainRanking(lean.model, shape, [win, heavier]).at(-1)).toMatch(/is as fast \(0\.01% slower\) and needs as much memory or more/);
    expect(explainRanking(lean.model, shape, [win, lighter]).at(-1)).toMatch(/is as fast \(0\.01% slower\) and needs 2\.0 GiB less memory .*: the one to take for headroom\.$/);
  });

  it("'slower' is in time: a runner-up at half the throughput takes twice as long, 100% slower (it said 50%)", () => {
    const shape = shapeOf("dgx-h100", 16);
    const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp: 1, dp: 8, microBatch: 1, globalBatch: 64, zero: 1 });
    const win = estimate(model, shape, plan);
    const half = { ...win, throughput: { ...win.throughput, tokensPerSecond: win.throughput.tokensPerSecond / 2 } };
    expect(explainRanking(model, shape, [win, half]).at(-1)).toMatch(/ is 100\.0% slower: /);
  });

  it("names recomputation as the limit when it costs more than any overhead", () => {
    const shape = shapeOf("dgx-a100-40gb", 32);
    const { model, plan } = planFor("llama3-70b", shape, { tp: 8, pp: 4, dp: 1, microBatch: 1, globalBatch: 32, recompute: "full" });
    const e = estimate(model, shape, plan);
    const share = (e.time.breakdown.computeSeconds / e.time.stepSeconds) * (1 - e.throughput.mfu / e.throughput.hfu);
    expect(share).toBeGreaterThan(0.15); // a whole extra forward: about a quarter of compute
    expect(explainRanking(model, shape, [e])).toContain(`What limits it: recomputation, paid to fit in memory, ${(100 * share).toFixed(1)}% of the step.`);
  });

  it("without tensor parallel, names context- and expert-parallel traffic instead of saying there is none", () => {
    const shape = shapeOf("dgx-h100", 64);
    const { model, plan } = planFor("mixtral-8x7b", shape, { tp: 1, pp: 2, cp: 8, ep: 4, dp: 4, microBatch: 1 });
    const lines = explainRanking(model, shape, [estimate(model, shape, plan)]);
    expect(lines).not.toContain("No tensor parallel: every GPU holds whole layers, so no activation traffic per layer.");
    const line = lines.find((l) => l.startsWith("No tensor parallel"))!;
    expect(line).toContain("2 of the 8 experts of each MoE layer");
    expect(line).toContain("context parallel's ring over 8 GPUs");
    expect(line).toContain("expert parallel's all-to-alls over 4 GPUs");
    expect(lines.find((l) => l.startsWith("Gradients are reduced"))).toContain("32 ways (the experts' 8 ways)");
    // ep over every data-parallel GPU: each holds experts no other does, and nothing reduces their gradients.
    const all = planFor("mixtral-8x7b", shapeOf("dgx-h100", 16), { tp: 1, pp: 2, dp: 8, ep: 8, microBatch: 1 });
    const everyWay = explainRanking(all.model, shapeOf("dgx-h100", 16), [estimate(all.model, shapeOf("dgx-h100", 16), all.plan)]);
    expect(everyWay.find((l) => l.startsWith("Gradients are reduced"))).toContain("8 ways (the experts' not at all: each GPU holds its own)");
  });
});

describe("explainRanking: a misaligned head dimension", () => {
  const shape = shapeOf("dgx-a100-80gb", 8);
  const says = (heads: number, flashAttention: boolean) => {
    const { model, plan } = planFor(gptModel({ layers: 8, hidden: 13824, heads, vocab: 50304, seq: 2048 }), shape, { tp: 8, microBatch: 1, globalBatch: 8, flashAttention });
    return explainRanking(model, shape, [estimate(model, shape, plan)]).find((line) => line.startsWith("Head dimension"));
  };

  it("says when the unfused attention runs on the CUDA cores, and how to avoid it", () => {
    expect(says(128, false)).toBe("Head dimension 108 is not a multiple of 8: the unfused attention's products miss the tensor cores' " +
      "16-byte alignment and run on the CUDA cores at 19.5 TFLOP/s (fp32) instead of the tensor cores' 312; flash attention, " +
      "or a head count that makes hidden / heads a multiple of 8, avoids it.");
  });

  it("gives the measured rate on a GPU that measured misaligned products", () => {
    const h100 = shapeOf("dgx-h100", 8);
    const { model, plan } = planFor(gptModel({ layers: 8, hidden: 13824, heads: 128, vocab: 50304, seq: 2048 }), h100, { tp: 8, microBatch: 1, globalBatch: 8, flashAttention: false });
    const line = explainRanking(model, h100, [estimate(model, h100, plan)]).find((l) => l.startsWith("Head dimension"));
    expect(line).toMatch(/^Head dimension 108 is not a multiple of 8: .* and run at \d+ TFLOP\/s \(as measured on this GPU at head dimension 108\) instead of the tensor cores' 989;/);
  });

  it("says nothing with flash attention or an aligned head dimension", () => {
    expect(says(128, true)).toBeUndefined();
    expect(says(96, false)).toBeUndefined();
  });
});

describe("searchSummary: what the search went through", () => {
  it("counts the plans that fit, and those it timed (a speed bound keeps the others from it)", () => {
    expect(searchSummary({ searched: 12148, feasible: 3807, bounded: 8864 })).toBe("12,148 plans searched, 3,807 fit, 3,284 timed");
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

describe("layersLabel: a layout the table can be replayed from", () => {
  it("layersLabel writes runs of three or more as n x k, and nothing without a pipeline", () => {
    const plan = (pp: number, layersPerStage: number[]) => ({ pp, layersPerStage }) as unknown as Parameters<typeof layersLabel>[0];
    expect(layersLabel(plan(1, [32]))).toBe("-");
    expect(layersLabel(plan(2, [17, 15]))).toBe("17,15");
    expect(layersLabel(plan(16, [7, ...Array(14).fill(8), 7]))).toBe("7,8x14,7");
    expect(layersLabel(plan(4, [8, 8, 9, 7]))).toBe("8,8,9,7");
  });
});
