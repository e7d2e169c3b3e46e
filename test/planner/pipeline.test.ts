import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { pipelineSeconds, type StageTime } from "../../src/planner/cost/pipeline.js";
import type { Plan, Schedule } from "../../src/spec/types.js";

function plan(schedule: Schedule, pp: number, v = 1): Plan {
  return { pp, virtualStages: v, schedule } as Plan; // pipelineSeconds reads only these fields
}
const uniform = (p: number, t: number, w = t / 3): StageTime[] => Array.from({ length: p }, () => ({ totalSeconds: t, weightGradSeconds: w }));

describe("analytic pipeline bubbles (uniform stages, free communication)", () => {
  it("GPipe and 1F1B: idle share (p-1)/(m+p-1) (Narayanan et al. 2021, section 2.2.1)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 512 }), (p, m) => {
      for (const s of ["gpipe", "1f1b"] as const) {
        const { seconds } = pipelineSeconds(plan(s, p), uniform(p, 1), m);
        expect((seconds - m) / seconds).toBeCloseTo((p - 1) / (m + p - 1), 12);
      }
    }));
  });

  it("interleaved with v chunks: bubble (p-1)/(v m) of the ideal time (Narayanan et al. 2021, section 2.2.2)", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 2, max: 8 }), (p, k, v) => {
      const m = k * p;
      const { seconds } = pipelineSeconds(plan("interleaved", p, v), uniform(p, 1), m);
      expect((seconds - m) / m).toBeCloseTo((p - 1) / (v * m), 12);
    }));
  });

  it("ZB-H1 with F = B = W: bubble at most a third of 1F1B's (Qi et al. 2023, Table 1)", () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1, max: 512 }), (p, m) => {
      const stages = uniform(p, 3, 1); // F = B = W = 1
      const zb = pipelineSeconds(plan("zb-h1", p), stages, m).seconds - 3 * m;
      const ofb = pipelineSeconds(plan("1f1b", p), stages, m).seconds - 3 * m;
      expect(zb).toBeCloseTo((p - 1) * 1, 12); // (p-1)(F + B - W)
      expect(zb).toBeLessThanOrEqual(ofb / 3 + 1e-9);
    }));
  });

  it("naive model parallel: each GPU is idle (p-1)/p of the time", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), (p, m) => {
      const { seconds } = pipelineSeconds(plan("naive", p), uniform(p, 1), m);
      expect((seconds - m) / seconds).toBeCloseTo((p - 1) / p, 12);
    }));
  });

  it("the slowest stage sets the pace: (m-1) T_max + sum T_i for 1F1B", () => {
    const stages: StageTime[] = [1, 2, 1.5].map((t) => ({ totalSeconds: t, weightGradSeconds: 0 }));
    const r = pipelineSeconds(plan("1f1b", 3), stages, 10);
    expect(r.critical).toBe(1);
    expect(r.seconds).toBeCloseTo(9 * 2 + 4.5, 12);
  });
});
