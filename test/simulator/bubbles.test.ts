import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { inFlightMicroBatches } from "../../src/planner/cost/activations.js";
import { pipelineSeconds } from "../../src/planner/cost/pipeline.js";
import { vPassRatios, zbvOrder } from "../../src/planner/cost/zb-v.js";
import { simulateInput } from "../../src/simulator/simulate.js";
import type { Timeline } from "../../src/simulator/types.js";
import type { Plan, Schedule } from "../../src/spec/types.js";
import { perMicroBatch, stage, uniform } from "./fixtures.js";

/** Bubble fraction as the Estimate reports it: the critical stage's idle share of the pipelined time. */
function bubbleFraction(t: Timeline): number {
  const x = t.exposed;
  const pipelined = t.stepSeconds - x.ppSeconds - x.dpSeconds - x.optimizerSeconds;
  return x.bubbleSeconds / pipelined;
}

const seconds = fc.integer({ min: 1, max: 8 }).map((k) => k / 4); // exact in binary: sums compare tightly

describe("bubbles measured on the timeline (uniform stages, free communication)", () => {
  it("GPipe and 1F1B: (p-1)/(m+p-1) on the critical stage and idle on every stage (Narayanan et al. 2021, 2.2.1)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 64 }), seconds, seconds, seconds, (p, m, f, b, w) => {
      for (const schedule of ["gpipe", "1f1b"] as const) {
        const t = simulateInput(uniform(schedule, p, m, 1, stage({ f, b, w })));
        const want = (p - 1) / (m + p - 1);
        expect(bubbleFraction(t)).toBeCloseTo(want, 12);
        for (const r of t.ranks) expect(r.idleFraction).toBeCloseTo(want, 12);
        expect(t.stepSeconds).toBeCloseTo((m + p - 1) * (f + b + w), 9);
      }
    }), { numRuns: 60 });
  });

  it("interleaved with v chunks: (p-1)/(v m) of the ideal time (Narayanan et al. 2021, 2.2.2)", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 4 }), seconds, seconds, (p, k, v, f, b) => {
      const m = k * p; // Megatron's interleaved schedule needs whole groups of p micro-batches
      const s = stage({ f, b, w: 0 });
      const t = simulateInput(uniform("interleaved", p, m, v, s));
      const ideal = m * perMicroBatch(s);
      expect((t.stepSeconds - ideal) / ideal).toBeCloseTo((p - 1) / (v * m), 12);
    }), { numRuns: 60 });
  });

  it("ZB-H1 with F = B = W: bubble (p-1)(F+B-W), at most a third of 1F1B's (Qi et al. 2023, Table 1), for m >= p", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 16 }), fc.integer({ min: 0, max: 48 }), (p, extra) => {
      const m = p + extra;
      const zb = simulateInput(uniform("zb-h1", p, m)).exposed.bubbleSeconds;
      const ofb = simulateInput(uniform("1f1b", p, m)).exposed.bubbleSeconds;
      expect(zb).toBeCloseTo(p - 1, 9);
      expect(zb).toBeLessThanOrEqual(ofb / 3 + 1e-9);
    }), { numRuns: 60 });
  });

  it("naive model parallelism: every stage idle (p-1)/p of the step", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 16 }), (p, m) => {
      const t = simulateInput(uniform("naive", p, m));
      for (const r of t.ranks) expect(r.idleFraction).toBeCloseTo((p - 1) / p, 12);
    }), { numRuns: 40 });
  });

  it("with uniform stages every schedule's step equals the analytic formula of src/planner/cost/pipeline.ts", () => {
    const schedules: Schedule[] = ["naive", "gpipe", "1f1b", "interleaved", "zb-h1"];
    fc.assert(fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 4 }), seconds, seconds, seconds, (p, k, f, b, w) => {
      const m = k * p;
      for (const schedule of schedules) {
        const v = schedule === "interleaved" ? 2 : 1;
        const s = stage({ f, b, w: Math.min(w, f, b) }); // ZB-H1's formula assumes W is not the longest pass
        const t = simulateInput(uniform(schedule, p, m, v, s));
        const plan = { pp: p, virtualStages: v, schedule } as Plan; // pipelineSeconds reads only these
        const times = Array.from({ length: p }, () => ({ totalSeconds: perMicroBatch(s), weightGradSeconds: s.backwardWeightSeconds }));
        expect(t.stepSeconds).toBeCloseTo(pipelineSeconds(plan, times, m).seconds, 9);
      }
    }), { numRuns: 40 });
  });
});

describe("ZB-V (Qi et al. 2023, the V-shaped zero-bubble schedule)", () => {
  const quarter = fc.integer({ min: 1, max: 8 }).map((k) => k / 4);

  it("with uniform stages its step is the analytic formula of src/planner/cost/pipeline.ts: its order's own play", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 4 }), quarter, quarter, (p, k, b, w) => {
      const m = k * p;
      const s = stage({ f: 1, b, w });
      const t = simulateInput(uniform("zb-v", p, m, 2, s));
      const plan = { pp: p, virtualStages: 2, schedule: "zb-v" } as Plan;
      const times = Array.from({ length: p }, () => ({ totalSeconds: perMicroBatch(s), weightGradSeconds: s.backwardWeightSeconds }));
      const ratios = vPassRatios(1, b, w);
      expect(t.stepSeconds).toBeCloseTo(pipelineSeconds(plan, times, m, ratios).seconds, 9);
      // The chunks are half a stage: the play is in their forwards.
      expect(t.stepSeconds).toBeCloseTo(zbvOrder(p, m, ratios).playLength * 0.5, 9);
    }), { numRuns: 60 });
  });

  it("with equal passes and m >= p it idles less than ZB-H1 and 1F1B, at 1F1B's peak activation memory", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 4 }), (p, k) => {
      const m = k * p;
      const v = simulateInput(uniform("zb-v", p, m, 2));
      const h1 = simulateInput(uniform("zb-h1", p, m));
      const ofb = simulateInput(uniform("1f1b", p, m));
      expect(v.stepSeconds).toBeLessThan(h1.stepSeconds);
      expect(h1.stepSeconds).toBeLessThan(ofb.stepSeconds);
      // One byte per micro-batch through a stage, half a byte per chunk: at most p, 1F1B's first stage.
      expect(Math.max(...v.ranks.map((r) => r.peakActivationBytes))).toBe(Math.max(...ofb.ranks.map((r) => r.peakActivationBytes)));
    }), { numRuns: 30 });
  });
});

describe("micro-batches in flight (peak activations with one byte per micro-batch)", () => {
  it("1F1B stage i holds min(p - i, m) (Narayanan et al. 2021, 2.2.1)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 40 }), (p, m) => {
      const t = simulateInput(uniform("1f1b", p, m));
      t.ranks.forEach((r, i) => expect(r.peakActivationBytes).toBe(Math.min(p - i, m)));
    }), { numRuns: 60 });
  });

  it("GPipe holds all m, naive one, interleaved Megatron's warm-up + 1 chunks: as the cost model counts them", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 10 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 4 }), (p, k, v) => {
      const m = k * p;
      for (const [schedule, vs] of [["gpipe", 1], ["naive", 1], ["interleaved", v]] as const) {
        const t = simulateInput(uniform(schedule, p, m, vs));
        const plan = { pp: p, virtualStages: vs, schedule } as Plan;
        t.ranks.forEach((r, i) => expect(r.peakActivationBytes).toBeCloseTo(inFlightMicroBatches(plan, i, m), 12));
      }
    }), { numRuns: 40 });
  });

  it("ZB-H1 keeps 1F1B's peak p on stage 0 but holds up to p on every stage (W holds activations until it runs)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 40 }), (p, m) => {
      const t = simulateInput(uniform("zb-h1", p, m));
      const ofb = simulateInput(uniform("1f1b", p, m));
      expect(Math.max(...t.ranks.map((r) => r.peakActivationBytes))).toBe(Math.max(...ofb.ranks.map((r) => r.peakActivationBytes)));
      t.ranks.forEach((r) => expect(r.peakActivationBytes).toBe(Math.min(p, m)));
    }), { numRuns: 40 });
  });
});
