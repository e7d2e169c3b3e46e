import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { stageActivationBytes } from "../../src/planner/cost/memory.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { simulate } from "../../src/simulator/simulate.js";
import type { PlanInput } from "../../src/spec/plan.js";
import type { Schedule } from "../../src/spec/types.js";
import { gptModel, planFor, relErr, shapeOf } from "../helpers.js";

/** The values an arbitrary generates. */
type ValueOf<A> = A extends fc.Arbitrary<infer T> ? T : never;

const h100 = shapeOf("dgx-h100", 64);
const gpt = gptModel({ layers: 24, hidden: 2048, heads: 16, vocab: 51200, seq: 2048 });

const planArb = fc.record({
  tp: fc.constantFrom(1, 2, 4),
  pp: fc.constantFrom(2, 4, 8),
  cp: fc.constantFrom(1, 2),
  microBatch: fc.constantFrom(1, 2),
  recompute: fc.constantFrom<"none" | "selective" | "full">("none", "selective", "full"),
  sequenceParallel: fc.boolean(),
  flashAttention: fc.boolean(),
  schedule: fc.constantFrom<Schedule>("naive", "gpipe", "1f1b", "interleaved", "zb-h1"),
  batchGroups: fc.integer({ min: 1, max: 3 }),
  ppKeepOutputs: fc.boolean(),
});

function planOf(input: ValueOf<typeof planArb>) {
  const { batchGroups, ...rest } = input;
  const dp = 64 / (rest.tp * rest.pp * rest.cp);
  const virtualStages = rest.schedule === "interleaved" ? 3 : 1;
  return planFor(gpt, h100, { ...rest, virtualStages, globalBatch: dp * rest.microBatch * rest.pp * batchGroups } as PlanInput);
}

describe("simulated activation memory against the cost model (src/planner/cost/memory.ts)", () => {
  it("the peak of each stage equals stageActivationBytes for every schedule", () => {
    fc.assert(fc.property(planArb, (input) => {
      const { model, plan } = planOf(input);
      const { timeline } = simulate(model, h100, plan);
      const costs = planCosts(model, h100, plan);
      timeline.ranks.forEach((r, i) => {
        expect(relErr(r.peakActivationBytes, stageActivationBytes(model, plan, i, costs.microBatches, costs.activations))).toBeLessThan(1e-12);
      });
    }), { numRuns: 80 });
  });

  it("activations rise with each forward and return to zero once every backward has run", () => {
    const { model, plan } = planFor("llama3-8b", shapeOf("dgx-h100", 8), { pp: 4, globalBatch: 16, recompute: "full" });
    const { timeline } = simulate(model, shapeOf("dgx-h100", 8), plan);
    for (const r of timeline.ranks) {
      const bytes = Array.from(r.memory.bytes);
      expect(bytes[0]).toBeGreaterThan(0);
      expect(Math.max(...bytes)).toBe(r.peakActivationBytes);
      expect(bytes[bytes.length - 1]).toBeCloseTo(0, 0);
      const times = Array.from(r.memory.timeSeconds);
      for (let k = 1; k < times.length; k++) expect(times[k]).toBeGreaterThan(times[k - 1]!);
    }
  });
});
