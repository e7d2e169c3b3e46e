import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { estimate } from "../../src/planner/cost/estimate.js";
import { planCosts, stageMicroBatchSeconds } from "../../src/planner/cost/stages.js";
import { simulate } from "../../src/simulator/simulate.js";
import type { PlanInput } from "../../src/spec/plan.js";
import type { Schedule } from "../../src/spec/types.js";
import { planFor, relErr, shapeOf } from "../helpers.js";

/** The values an arbitrary generates. */
type ValueOf<A> = A extends fc.Arbitrary<infer T> ? T : never;

const h100 = shapeOf("dgx-h100", 64);

const planArb = fc.record({
  tp: fc.constantFrom(1, 2, 4, 8),
  pp: fc.constantFrom(1, 2, 4),
  cp: fc.constantFrom(1, 2),
  zero: fc.constantFrom(0, 1, 2, 3),
  recompute: fc.constantFrom<"none" | "selective" | "full">("none", "selective", "full"),
  sequenceParallel: fc.boolean(),
  schedule: fc.constantFrom<Schedule>("naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v"),
  groups: fc.integer({ min: 1, max: 4 }),
});

function resolve(input: ValueOf<typeof planArb>) {
  const { groups, ...rest } = input;
  const chunked = rest.schedule === "interleaved" || rest.schedule === "zb-v";
  // a pipeline schedule needs a pipeline (one stage runs 1F1B: gradient accumulation); SP needs tp
  const pp = rest.schedule === "1f1b" ? rest.pp : Math.max(2, rest.pp);
  const dp = 64 / (rest.tp * pp * rest.cp);
  return planFor("llama3-8b", h100, { ...rest, pp, sequenceParallel: rest.tp > 1 && rest.sequenceParallel, virtualStages: chunked ? 2 : 1, globalBatch: dp * pp * groups } as PlanInput);
}

function keys(x: unknown, prefix = ""): string[] {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return [prefix];
  return Object.entries(x).flatMap(([k, v]) => keys(v, `${prefix}.${k}`)).sort();
}

describe("simulate(): an Estimate whose time comes from the timeline", () => {
  it("has the contract's shape, adds up to the step, and keeps the cost model's memory and traffic", () => {
    fc.assert(fc.property(planArb, (input) => {
      const { model, plan } = resolve(input);
      const { estimate: sim, timeline } = simulate(model, h100, plan);
      const analytic = estimate(model, h100, plan);
      expect(keys(sim)).toEqual(keys(analytic));
      const b = sim.time.breakdown;
      for (const v of Object.values(b)) expect(v).toBeGreaterThanOrEqual(0);
      expect(Object.values(b).reduce((x, y) => x + y, 0)).toBeCloseTo(sim.time.stepSeconds, 9);
      expect(sim.time.stepSeconds).toBeCloseTo(timeline.stepSeconds, 9);
      expect(sim.memory).toEqual(analytic.memory);
      expect(sim.communication).toEqual(analytic.communication);
      expect(sim.pipeline.microBatches).toBe(analytic.pipeline.microBatches);
      expect(sim.pipeline.bubbleFraction).toBeGreaterThanOrEqual(0);
      expect(sim.pipeline.bubbleFraction).toBeLessThan(1);
      expect(sim.throughput.tokensPerSecond).toBeCloseTo((plan.globalBatch * plan.seqLen) / sim.time.stepSeconds, 6);
    }), { numRuns: 40 });
  });

  it("never beats the critical stage's own work, and without data-parallel traffic stays within 10% of the analytic formulas", () => {
    fc.assert(fc.property(planArb, (input) => {
      const { model, plan } = resolve(input);
      const sim = simulate(model, h100, plan).estimate;
      const costs = planCosts(model, h100, plan);
      for (const s of costs.stages) expect(sim.time.stepSeconds).toBeGreaterThanOrEqual(costs.microBatches * stageMicroBatchSeconds(s) * (1 - 1e-12));
      // Gradients reduce over dp * cp (communication.ts dpCosts): with neither, only the pipeline differs.
      if (plan.dp * plan.cp === 1) expect(relErr(sim.time.stepSeconds, estimate(model, h100, plan).time.stepSeconds)).toBeLessThan(0.1);
    }), { numRuns: 40 });
  });

  it("data-parallel exposure: the simulation shows what the cost model says, and nothing where it says nothing", () => {
    // ZeRO 0/1 on one stage: the bucketed formula is exact (only the first gather and last reduce bucket show).
    const shape = shapeOf("dgx-h100", 16);
    for (const zero of [0, 1] as const) {
      const { model, plan } = planFor("llama3-8b", shape, { zero, globalBatch: 64 });
      const costs = planCosts(model, shape, plan);
      const s = costs.stages[0]!;
      expect(s.dp.buckets).toBeGreaterThan(1);
      const analytic = estimate(model, shape, plan).time.breakdown.dpCommSeconds;
      expect(analytic).toBeCloseTo((s.dp.reduceOnce.seconds + s.dp.gatherOnce.seconds) / s.dp.buckets, 12);
      expect(simulate(model, shape, plan).estimate.time.breakdown.dpCommSeconds).toBeCloseTo(analytic, 12);
    }
    // Every plan shape: where the cost model calls the traffic hidden, the timeline exposes none of it.
    let hidden = 0;
    fc.assert(fc.property(planArb, (input) => {
      const { model, plan } = resolve(input);
      const analytic = estimate(model, h100, plan).time.breakdown.dpCommSeconds;
      const sim = simulate(model, h100, plan).estimate.time.breakdown.dpCommSeconds;
      if (analytic === 0) {
        hidden++;
        expect(sim).toBeLessThan(1e-12);
      }
      if (plan.pp === 1 && plan.zero <= 1) expect(sim).toBeCloseTo(analytic, 9);
    }), { numRuns: 120, seed: 20261122 }); // seeded: unseeded, a draw of 120 plans could hold no hidden case
    expect(hidden).toBeGreaterThan(0);
  });

  it("a pipeline of identical middle stages reports the bubble the schedule implies", () => {
    const shape = shapeOf("dgx-h100", 64);
    const { model, plan } = planFor("llama3-70b", shape, { tp: 8, pp: 8, dp: 1, globalBatch: 64 });
    const sim = simulate(model, shape, plan).estimate;
    const analytic = estimate(model, shape, plan);
    expect(relErr(sim.time.stepSeconds, analytic.time.stepSeconds)).toBeLessThan(0.02);
    expect(sim.pipeline.bubbleFraction).toBeGreaterThan(0.05);
    expect(relErr(sim.pipeline.bubbleFraction, analytic.pipeline.bubbleFraction)).toBeLessThan(0.1);
  });
});
