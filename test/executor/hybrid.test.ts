import { describe, expect, it } from "vitest";
import { expectActivationMemory, expectBytes, expectFaithful, expectSameNumerics, runPlan } from "./check.js";

describe("three data-parallel ranks", () => {
  it("dp3, ZeRO 3: uneven blocks, parameter tensors straddling the members' blocks, gathered from the shared heaps", async () => {
    const ex = await runPlan(3, { dp: 3, zero: 3, globalBatch: 6 }, { steps: 3 });
    expectSameNumerics(ex);
    expectBytes(ex, { unevenDpBlocks: true });
    expectActivationMemory(ex);
    expect(ex.results.map((r) => r.heapCollectives)).toEqual([true, true, true]);
  });
});

describe("combinations on 4 ranks", () => {
  it("dp2 x tp2 (ZeRO 1, sequence parallel)", async () => {
    const ex = await runPlan(4, { dp: 2, tp: 2, zero: 1 });
    expectFaithful(ex);
  });
  it("a Llama-style model (RMSNorm, SwiGLU, rotary positions, 2 KV heads): cp2 x tp2", async () => {
    const llama = { norm: "rmsnorm", mlp: "swiglu", positionEmbedding: "rope", kvHeads: 2, linearBias: false, ffnHiddenSize: 96 } as const;
    const ex = await runPlan(4, { cp: 2, tp: 2 }, { model: llama });
    expectFaithful(ex);
  });
  it("tp2 x pp2 (1F1B, sequence parallel)", async () => {
    const ex = await runPlan(4, { tp: 2, pp: 2 });
    expectFaithful(ex);
  });
  it("tp2 x pp2, ZB-H1 (sequence parallel: the inputs gathered again are kept for W)", async () => {
    const ex = await runPlan(4, { tp: 2, pp: 2, schedule: "zb-h1" });
    expectFaithful(ex);
  });
  it("dp2 x pp2, ZB-H1, ZeRO 2 (each unit's gradients reduce-scattered after its W)", async () => {
    const ex = await runPlan(4, { dp: 2, pp: 2, zero: 2, schedule: "zb-h1" });
    expectFaithful(ex);
  });
  it("a Llama-style model, cp2 x pp2, ZB-H1", async () => {
    const llama = { norm: "rmsnorm", mlp: "swiglu", positionEmbedding: "rope", kvHeads: 2, linearBias: false, ffnHiddenSize: 96 } as const;
    const ex = await runPlan(4, { cp: 2, pp: 2, schedule: "zb-h1" }, { model: llama });
    expectFaithful(ex);
  });
});
