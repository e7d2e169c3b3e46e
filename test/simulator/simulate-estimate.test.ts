import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { simulate, simulateEstimate, type StepCache } from "../../src/simulator/simulate.js";
import type { PlanInput } from "../../src/spec/plan.js";
import type { Schedule } from "../../src/spec/types.js";
import { planFor, shapeOf } from "../helpers.js";

const h100 = shapeOf("dgx-h100", 64);

describe("simulateEstimate(): the planner's refinement, without the per-rank timeline", () => {
  it("gives exactly simulate()'s Estimate (random pipeline plans)", () => {
    fc.assert(fc.property(
      fc.record({
        tp: fc.constantFrom(1, 2, 8),
        pp: fc.constantFrom(1, 2, 4),
        cp: fc.constantFrom(1, 2),
        zero: fc.constantFrom(0, 1, 2, 3),
        recompute: fc.constantFrom<"none" | "full">("none", "full"),
        schedule: fc.constantFrom<Schedule>("naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v"),
        groups: fc.integer({ min: 1, max: 3 }),
      }),
      ({ groups, ...rest }) => {
        const chunked = rest.schedule === "interleaved" || rest.schedule === "zb-v";
        const pp = rest.schedule === "1f1b" ? rest.pp : Math.max(2, rest.pp); // a pipeline schedule needs a pipeline
        const dp = 64 / (rest.tp * pp * rest.cp);
        const { model, plan } = planFor("llama3-8b", h100, { ...rest, pp, virtualStages: chunked ? 2 : 1, globalBatch: dp * pp * groups } as PlanInput);
        expect(simulateEstimate(model, h100, plan)).toEqual(simulate(model, h100, plan).estimate);
      },
    ), { numRuns: 40 });
  });

  it("gives exactly simulate()'s Estimate with parameter servers, synchronous and asynchronous", () => {
    for (const asynchronous of [false, true]) {
      const { model, plan } = planFor("gpt2-large", shapeOf("dgx-h100", 8), { dp: 8, parameterServers: 2, asynchronous, globalBatch: 64 });
      expect(simulateEstimate(model, shapeOf("dgx-h100", 8), plan)).toEqual(simulate(model, shapeOf("dgx-h100", 8), plan).estimate);
    }
  });

  it("shares one run among plans with the same simulator input, each still getting its own Estimate", () => {
    const shape = shapeOf("dgx-a100-80gb", 8);
    const cache: StepCache = new Map();
    // dp x cp x micro-batch splits of the same per-stage work, and a different plan. At 32k tokens each
    // rank's chunk of the sequence (32k, 16k, 8k) sits where the published attention curve is flat for the
    // first two (attention-length.ts; the A100 has no measured curve, whose 16k and 32k rates differ), so
    // only those two share a run.
    const inputs: PlanInput[] = [
      { dp: 8, cp: 1, microBatch: 1, zero: 3 },
      { dp: 4, cp: 2, microBatch: 2, zero: 3 },
      { dp: 2, cp: 4, microBatch: 4, zero: 3 },
      { dp: 8, cp: 1, microBatch: 1, zero: 2 },
      { dp: 4, tp: 2, microBatch: 1, zero: 1 },
    ];
    for (const input of inputs) {
      const { model, plan } = planFor("llama3-8b", shape, { ...input, globalBatch: 64, seqLen: 32768 });
      const cached = simulateEstimate(model, shape, plan, cache);
      expect(cached).toEqual(simulate(model, shape, plan).estimate);
      expect(cached.plan).toEqual(plan);
    }
    expect(cache.size).toBe(inputs.length - 1);
  });
});
