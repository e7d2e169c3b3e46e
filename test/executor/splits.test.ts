import { describe, expect, it } from "vitest";
import { expectBytes, expectFaithful, expectHeapFormsAgree, expectSameNumerics, expectStateBytes, runPlan } from "./check.js";
import { stageSchedule } from "../../src/executor/parallel/schedule.js";
import { modelUnits, unitSlots } from "../../src/executor/model/layout.js";
import type { Execution } from "../../src/executor/execute.js";
import { planVPassRatios } from "../../src/planner/cost/zb-v.js";

/**
 * Every split of tiny-gpt (2 layers, hidden 64, 4 heads, vocab 256, 32 tokens; global batch 4) against
 * the one-rank run of the same seed, over 5 steps: same losses and weights, exact bytes per rank and the
 * cost model's bytes per kind, exact activation memory. These are the CI's wasm executions.
 */
describe("data parallel", () => {
  for (const zero of [0, 1, 2, 3] as const) {
    it(`dp2, ZeRO ${zero}`, async () => {
      const ex = await runPlan(2, { dp: 2, zero });
      expect(ex.backend).toBe("wasm");
      expectFaithful(ex);
      // ZeRO's weight gathers copy every member's block from its shared heap into the new tensors (state.ts).
      expect(ex.results.map((r) => r.heapCollectives)).toEqual([zero >= 1, zero >= 1]);
    });
  }
  it("dp2, ZeRO 3 with every heap unshared: the weight gathers go through the slots, with the same losses to the bit and the same bytes", async () => {
    await expectHeapFormsAgree(2, { dp: 2, zero: 3 });
  });
  it("dp2, ZeRO 3, tied embeddings on one stage: the word table gathered once a pass, held for the output layer (FSDP's root unit)", async () => {
    const ex = await runPlan(2, { dp: 2, zero: 3 }, { model: { tiedEmbeddings: true }, steps: 3 });
    expectFaithful(ex);
  });
  it("dp2, ZeRO 2, tied embeddings (the head's backward starts the embedding's gradient: its own bucket region)", async () => {
    const ex = await runPlan(2, { dp: 2, zero: 2 }, { model: { tiedEmbeddings: true }, steps: 3 });
    expectSameNumerics(ex);
    expectBytes(ex);
  });
});

describe("tensor parallel", () => {
  for (const sp of [true, false]) {
    it(`tp2, sequence parallel ${sp ? "on" : "off"}`, async () => {
      const ex = await runPlan(2, { tp: 2, sequenceParallel: sp });
      expectFaithful(ex);
      // The collectives read each other's tensors in the ranks' shared wasm heaps (run/tensor-group.ts).
      expect(ex.results.map((r) => r.heapCollectives)).toEqual([true, true]);
    });
  }
  it("tp2 with every heap unshared: the collectives copy through the slots, with the same losses to the bit and the same bytes", async () => {
    expectFaithful(await expectHeapFormsAgree(2, { tp: 2 }, { reference: true }));
  });
});

describe("pipeline parallel", () => {
  for (const schedule of ["gpipe", "1f1b", "naive"] as const) {
    it(`pp2, ${schedule}`, async () => {
      const ex = await runPlan(2, { pp: 2, schedule });
      expectFaithful(ex);
    });
  }
  it("pp2, ZB-H1: the backward split into input-gradient (B) and weight-gradient (W) passes", async () => {
    const ex = await runPlan(2, { pp: 2, schedule: "zb-h1" });
    expectFaithful(ex);
    // Stage 1 (the last) runs each W after stage 0 has had its B's gradient: its W are the passes beyond F and B.
    const r = ex.results.find((x) => x.coords.pp === 1)!;
    const m = ex.plan.globalBatch / ex.plan.microBatch;
    expect(r.steps[0]!.forwardPassSeconds).toHaveLength(m);
    expect(r.steps[0]!.backwardPassSeconds).toHaveLength(2 * m);
  });
  it("pp2, interleaved 1F1B with 2 chunks per stage (4 layers)", async () => {
    const ex = await runPlan(2, { pp: 2, virtualStages: 2 }, { layers: 4 });
    expectFaithful(ex);
  });
  it("pp2, ZB-V: chunks laid out as a V, the loss on the first stage, the turn kept on the last (4 layers)", async () => {
    const ex = await runPlan(2, { pp: 2, schedule: "zb-v" }, { layers: 4 });
    expectFaithful(ex);
    // the first stage holds the embedding and the head, so its rank reports the loss
    expect(ex.results.filter((r) => r.holdsLoss).map((r) => r.coords.pp)).toEqual([0]);
    // per micro-batch each stage sends one activation and one gradient: the turn of the V is not a send
    const m = ex.plan.globalBatch / ex.plan.microBatch;
    const rows = ex.plan.microBatch * ex.plan.seqLen;
    for (const r of ex.results) {
      const sent = r.steps[0]!.commBytesByPurpose;
      expect([sent["pp.activation"], sent["pp.gradient"]]).toEqual([4 * m * rows * ex.model.hiddenSize, 4 * m * rows * ex.model.hiddenSize]);
    }
  });
  it("pp2, ZB-V with its order found for B = 2 and W = 0.5 forwards (the executor's priced passes, execute's default): the same numerics, bytes and memory", async () => {
    const vPassRatios = { backward: 2, weight: 0.5 };
    const ex = await runPlan(2, { pp: 2, schedule: "zb-v", vPassRatios }, { layers: 4 });
    expect(ex.plan.vPassRatios).toEqual(vPassRatios);
    expectFaithful(ex);
    // The order is the plan's: not the one the FLOP ratios (1 and 1 here) give.
    const { vPassRatios: _, ...flops } = ex.plan;
    const m = ex.plan.globalBatch / ex.plan.microBatch;
    const order = (plan: typeof ex.plan) => [0, 1].map((stage) => stageSchedule(ex.model, plan, stage, m).map((a) => `${a.pass}${a.microBatch}.${a.chunk}`).join(" "));
    expect(planVPassRatios(ex.model, flops)).toEqual({ backward: 1, weight: 1 });
    expect(order(ex.plan)).not.toEqual(order(flops));
  });
});

describe("tied embeddings on more than one stage: the head's copy of the word table (Megatron-LM's embedding group)", () => {
  /** The head unit's tied copy on a last-stage rank: the floats of its flat vector past final.norm. */
  const copyOf = (ex: Execution, rank: number) => {
    const head = ex.results[rank]!.weights.find((w) => w.unit === "head")!;
    const own = unitSlots(modelUnits(ex.model).at(-1)!, ex.plan.tp).size;
    return head.data.subarray(own);
  };
  it("pp2: the two copies' gradients are summed each step, so they stay one weight (the same losses as one rank, and the copy equal to the embedding)", async () => {
    const ex = await runPlan(2, { pp: 2 }, { model: { tiedEmbeddings: true } });
    expectFaithful(ex);
    expect(Array.from(copyOf(ex, 1))).toEqual(Array.from(ex.weights.get("embed.word")!));
    // each of the pair sends the whole V x h gradient once (a two-member all-reduce)
    for (const r of ex.results) expect(r.steps[0]!.commBytesByPurpose["pp.tied-grad"]).toBe(4 * ex.model.vocabSize * ex.model.hiddenSize);
  });
  it("dp2 x pp2 under ZeRO 1 (4 ranks): each replica's pair sums its copies, then the replicas reduce as for any gradient", async () => {
    expectFaithful(await runPlan(4, { dp: 2, pp: 2, zero: 1 }, { model: { tiedEmbeddings: true }, steps: 3 }));
  });
  it("pp2 under ZB-V (4 layers): the output layer reads the embedding's own weights on the first stage, no copy, nothing to sum", async () => {
    const ex = await runPlan(2, { pp: 2, schedule: "zb-v" }, { layers: 4, model: { tiedEmbeddings: true }, steps: 3 });
    expectFaithful(ex);
    for (const r of ex.results) expect(r.steps[0]!.commBytesByPurpose["pp.tied-grad"]).toBeUndefined();
  });
  it("tp2 x pp2 with interleaving (4 layers): each tp rank's pair sums its vocabulary block", async () => {
    expectFaithful(await runPlan(4, { tp: 2, pp: 2, virtualStages: 2 }, { layers: 4, model: { tiedEmbeddings: true }, steps: 3 }));
  });
});

describe("BLOOM's architecture: ALiBi, and a norm after the embedding", () => {
  it("tp2 with SP: each rank's query heads keep their own slopes; the embedding norm's gradients, partial over the rank's positions, are summed with the other replicated weights'", async () => {
    expectFaithful(await runPlan(2, { tp: 2 }, { model: { positionEmbedding: "alibi", embeddingNorm: true }, steps: 3 }));
  });
  it("pp2 under ZB-H1: the embedding norm's gradients come in B, its input kept until then", async () => {
    expectFaithful(await runPlan(2, { pp: 2, schedule: "zb-h1" }, { model: { positionEmbedding: "alibi", embeddingNorm: true }, steps: 3 }));
  });
  it("cp2: each rank's queries are biased by their distance to every key, wherever it sits", async () => {
    expectFaithful(await runPlan(2, { cp: 2 }, { model: { positionEmbedding: "alibi" }, steps: 3 }));
  });
});

describe("full recomputation under a split backward", () => {
  it("pp2, ZB-H1: B rebuilds the layer's forward, and W keeps the linears' inputs from it (the same numerics, exact bytes and activations)", async () => {
    expectFaithful(await runPlan(2, { pp: 2, schedule: "zb-h1", recompute: "full" }, { steps: 3 }));
  });
  it("pp2, ZB-V (4 layers) and tp2 x pp2 ZB-H1 with SP (W keeps the gathered inputs instead)", async () => {
    expectFaithful(await runPlan(2, { pp: 2, schedule: "zb-v", recompute: "full" }, { layers: 4, steps: 3 }));
    expectFaithful(await runPlan(4, { tp: 2, pp: 2, schedule: "zb-h1", recompute: "full" }, { steps: 3 }));
  });
});

describe("selective recomputation", () => {
  it("tp2 x pp2 keeping no attention scores: the backward computes them again", async () => {
    const ex = await runPlan(4, { tp: 2, pp: 2, recompute: "selective" });
    expectFaithful(ex);
  });
  it("keeps less than the same plan without it, by the scores exactly", async () => {
    const [plain, selective] = await Promise.all([runPlan(2, { cp: 2 }, { steps: 1 }), runPlan(2, { cp: 2, recompute: "selective" }, { steps: 1 })]);
    const scores = (ex: typeof plain) => ex.results[0]!.memory.peakActivationBytes;
    const { plan, model } = selective;
    // Per layer and micro-batch: heads x (s / cp) x s floats, for the in-flight micro-batch of each layer.
    expect(scores(plain) - scores(selective)).toBe(4 * model.layers * model.attentionHeads * (plan.seqLen / plan.cp) * plan.seqLen * plan.microBatch);
    expectSameNumerics(selective);
  });
});

describe("full recomputation", () => {
  it("pp2, every layer's forward run again in its backward from the kept input", async () => {
    expectFaithful(await runPlan(2, { pp: 2, recompute: "full" }));
  });
  it("tp2 with sequence parallel: the recomputed forward's collectives run again", async () => {
    expectFaithful(await runPlan(2, { tp: 2, recompute: "full" }));
  });
  it("cp2, a Llama-style model, one of two layers recomputed", async () => {
    const llama = { norm: "rmsnorm", mlp: "swiglu", positionEmbedding: "rope", kvHeads: 2, linearBias: false, ffnHiddenSize: 96 } as const;
    expectFaithful(await runPlan(2, { cp: 2, recomputeLayersPerStage: [1] }, { model: llama }));
  });
});

describe("context parallel", () => {
  it("cp2, keys and values gathered over the cp group", async () => {
    const ex = await runPlan(2, { cp: 2 });
    expectFaithful(ex);
    expect(ex.results.map((r) => r.heapCollectives)).toEqual([true, true]);
  });
});

describe("parameter servers", () => {
  it("2 workers, 1 server, synchronous: the all-reduce's numerics", async () => {
    const ex = await runPlan(2, { dp: 2, parameterServers: 1 });
    expectSameNumerics(ex);
    expectBytes(ex);
    // The servers hold the optimizer: a worker keeps no master copy and no Adam moments (it made both, and
    // the report showed 1.62 MB measured against 0 predicted), as the cost model counts none on it.
    expect(ex.results.filter((r) => r.steps.length > 0).map((r) => r.memory.states.optimizerBytes)).toEqual([0, 0]);
    expectStateBytes(ex);
  });
  it("2 workers, 2 servers, asynchronous with staleness 1: the loss still falls and staleness is measured", async () => {
    const steps = 8;
    const ex = await runPlan(2, { dp: 2, parameterServers: 2, asynchronous: true, staleness: 1 }, { reference: false, steps });
    // Updates arrive in a timing-dependent order, so the losses vary from run to run, a step's by up to 1.5
    // (CI drew 5.55 4.35 5.86 over the first, fourth and fifth of 5 steps, and failed a check of the last
    // step alone); over 8 steps the last three averaged 4.25-4.58 from 5.55 in six runs (2026-11-24).
    const tail = ex.losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
    expect(tail, ex.losses.join(" ")).toBeLessThan(ex.losses[0]! - 0.5);
    const servers = ex.results.filter((r) => r.staleness !== undefined);
    expect(servers).toHaveLength(2);
    for (const s of servers) {
      expect(s.staleness).toHaveLength(2 * steps);
      // A worker may be one step (the bound) ahead of the slowest, so while one computes a step the other
      // can push up to bound + 2 = 3 updates: staleness in updates is at most (workers - 1) (bound + 2).
      expect(Math.max(...s.staleness!), JSON.stringify(s.staleness)).toBeLessThanOrEqual(3);
    }
  });
});

describe("mixture of experts (tiny-moe: tiny-gpt's layers with 4 experts each, top 2; every expert on every rank)", () => {
  const moe = { moe: { experts: 4, topK: 2 } };
  it("dp2, ZeRO 2: the experts' gradients reduce-scattered with their layer's", async () => {
    const ex = await runPlan(2, { dp: 2, zero: 2 }, { model: moe });
    expectFaithful(ex);
    expectStateBytes(ex);
  });
  for (const zero of [1, 3] as const) {
    it(`dp2 x ep2, ZeRO ${zero}: each rank two experts, tokens sent to them and back by all-to-all, their gradients its own`, async () => {
      const ex = await runPlan(2, { dp: 2, ep: 2, zero }, { model: moe });
      expectFaithful(ex);
      expectStateBytes(ex);
      expect(ex.results.every((r) => r.steps.every((s) => (s.commBytesByPurpose["ep.moe"] ?? 0) > 0))).toBe(true);
      // The all-to-alls (and the ZeRO gathers) read the other rank's tensors in its shared wasm heap.
      expect(ex.results.map((r) => r.heapCollectives)).toEqual([true, true]);
    });
  }
  it("dp2 x ep2 with every heap unshared: the all-to-alls copy through the slots, with the same losses to the bit and the same bytes", async () => {
    await expectHeapFormsAgree(2, { dp: 2, ep: 2 }, { model: moe });
  });
  it("dp4 x ep2, ZeRO 2: each expert on two ranks, its gradients reduce-scattered between them (edp), the rest over all four", async () => {
    const ex = await runPlan(4, { dp: 4, ep: 2, zero: 2 }, { model: moe, steps: 3 });
    expectFaithful(ex);
    expectStateBytes(ex);
  });
  it("cp2: each rank routes its own positions of every sequence as a group, as the one-rank run routes them", async () => {
    const ex = await runPlan(2, { cp: 2 }, { model: moe });
    expectFaithful(ex);
  });
  it("cp2 x ep2, ZeRO 1: the expert-parallel group made of the context-parallel ranks", async () => {
    const ex = await runPlan(2, { cp: 2, ep: 2, zero: 1 }, { model: moe });
    expectFaithful(ex);
    expectStateBytes(ex);
  });
  it("dp2 x cp2 x ep4, ZeRO 2 (4 ranks): every expert on one rank of the four", async () => {
    const ex = await runPlan(4, { dp: 2, cp: 2, ep: 4, zero: 2 }, { model: moe, steps: 3 });
    expectFaithful(ex);
    expectStateBytes(ex);
  });
  it("tp2 with sequence parallel: each expert split as the MLP is, the router's and the outputs' biases' gradients summed over tp once per step", async () => {
    const ex = await runPlan(2, { tp: 2 }, { model: moe });
    expectFaithful(ex);
    expectStateBytes(ex);
  });
  it("dp2 x tp2 x ep2, ZeRO 1 (4 ranks, Megatron-Core's alltoall dispatcher): each tp rank routes its own rows, the experts' rows gathered over tp", async () => {
    const ex = await runPlan(4, { dp: 2, tp: 2, ep: 2, zero: 1 }, { model: moe, steps: 3 });
    expectFaithful(ex);
    expectStateBytes(ex);
    expect(ex.results.every((r) => r.steps.every((s) => (s.commBytesByPurpose["tp.moe"] ?? 0) > 0))).toBe(true);
  });
  it("dp2 x tp2 x ep2, every layer recomputed in full (4 ranks)", async () => {
    const ex = await runPlan(4, { dp: 2, tp: 2, ep: 2, recompute: "full" }, { model: moe, steps: 3 });
    expectFaithful(ex);
  });
  it("dp2 x tp2 x pp2 x ep2, ZB-H1 (8 ranks): W of the shards run on the rows gathered over tp", async () => {
    const ex = await runPlan(8, { dp: 2, tp: 2, pp: 2, ep: 2, schedule: "zb-h1" }, { model: moe, steps: 3 });
    expectFaithful(ex);
  });
  it("dp2 x tp2 x pp2 x ep2, ZB-V, every layer recomputed in full (8 ranks, 4 layers): W takes the rebuilt router input", async () => {
    const ex = await runPlan(8, { dp: 2, tp: 2, pp: 2, ep: 2, schedule: "zb-v", recompute: "full" }, { model: moe, layers: 4, steps: 3 });
    expectFaithful(ex);
  });
  it("tp2 x pp2, ZB-H1 (4 ranks): W of the experts' shards", async () => {
    const ex = await runPlan(4, { tp: 2, pp: 2, schedule: "zb-h1" }, { model: moe, steps: 3 });
    expectFaithful(ex);
  });
  it("pp2, ZB-H1: the experts' and the router's weight gradients left to W, each unit's to its own entry", async () => {
    const ex = await runPlan(2, { pp: 2, schedule: "zb-h1" }, { model: moe });
    expectFaithful(ex);
  });
  it("pp2, ZB-V with every layer recomputed in full (4 layers): W takes the rebuilt experts' inputs and activations", async () => {
    const ex = await runPlan(2, { pp: 2, schedule: "zb-v", recompute: "full" }, { model: moe, layers: 4 });
    expectFaithful(ex);
  });
  it("pp2, 1F1B, every layer recomputed in full (the route made again from the recomputed router)", async () => {
    const ex = await runPlan(2, { pp: 2, schedule: "1f1b", recompute: "full" }, { model: moe });
    expectFaithful(ex);
  });
});

