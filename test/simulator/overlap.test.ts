import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { simulate, simulateInput } from "../../src/simulator/simulate.js";
import { loadContext, planInputFrom } from "../../src/cli/context.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { OpKind, Stream, type SimDp, type SimInput, type SimStage } from "../../src/simulator/types.js";
import type { Schedule } from "../../src/spec/types.js";
import { NO_DP, perMicroBatch, stage } from "./fixtures.js";

const one = (s: SimStage, m: number, schedule: Schedule = "1f1b"): SimInput =>
  ({ schedule, microBatches: m, virtualStages: 1, stages: [s], ppTransferSeconds: 0 });
const dp = (o: Partial<SimDp>): SimDp => ({ ...NO_DP, ...o });
const pos = fc.integer({ min: 1, max: 16 }).map((k) => k / 8);

describe("the simulated step never beats the work it must do", () => {
  it("is at least every stage's own work, and at least one micro-batch's forward-and-backward chain", () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(pos, pos, pos, fc.double({ min: 0, max: 0.5, noNaN: true })), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 12 }), fc.constantFrom<Schedule>("naive", "gpipe", "1f1b", "zb-h1"), fc.double({ min: 0, max: 0.2, noNaN: true }),
      (shape, m, schedule, transfer) => {
        const stages = shape.map(([f, b, w, c]) => stage({ f, b, w, tp: { forward: c, backward: c }, dp: dp({ reduceOnceSeconds: c, buckets: 2 }) }));
        const t = simulateInput({ schedule, microBatches: m, virtualStages: 1, stages, ppTransferSeconds: transfer });
        for (const s of stages) expect(t.stepSeconds).toBeGreaterThanOrEqual(m * perMicroBatch(s) - 1e-9);
        // One micro-batch forward through every stage and back; ZB-H1 keeps W off that chain but stage 0's.
        const offChain = (s: SimStage, i: number) => (schedule === "zb-h1" && i > 0 ? s.backwardWeightSeconds : 0);
        const chain = stages.reduce((sum, s, i) => sum + perMicroBatch(s) - offChain(s, i), 0) + 2 * (stages.length - 1) * transfer;
        expect(t.stepSeconds).toBeGreaterThanOrEqual(chain - 1e-9);
        // The critical rank's own work is the Estimate's compute + tp/cp/ep, all of it inside the step.
        const x = t.exposed;
        const crit = stages[t.criticalRank]!;
        expect(x.computeSeconds).toBeCloseTo(m * (crit.forwardSeconds + crit.backwardInputSeconds + crit.backwardWeightSeconds), 9);
        expect(x.tpSeconds).toBeCloseTo(m * (crit.tp.forward + crit.tp.backward), 9);
      }), { numRuns: 80 });
  });
});

describe("exposed communication", () => {
  it("context parallel: the cost model's exposed ring time, and none when it says the ring hides behind attention", () => {
    for (const exposedSeconds of [0, 0.25]) {
      const t = simulateInput(one(stage({ cp: { forward: exposedSeconds, backward: exposedSeconds } }), 4));
      expect(t.exposed.cpSeconds).toBeCloseTo(8 * exposedSeconds, 12);
      if (exposedSeconds === 0) expect(t.ops.kind.includes(OpKind.cp)).toBe(false);
    }
  });

  it("tensor parallel is always on the critical path (the compute waits for it)", () => {
    const t = simulateInput(one(stage({ tp: { forward: 0.1, backward: 0.2 } }), 5));
    expect(t.exposed.tpSeconds).toBeCloseTo(5 * 0.3, 12);
    expect(t.stepSeconds).toBeCloseTo(5 * 3.3, 9);
  });

  it("no data-parallel traffic: nothing exposed", () => {
    const t = simulateInput({ schedule: "1f1b", microBatches: 8, virtualStages: 1, stages: [stage(), stage()], ppTransferSeconds: 0 });
    expect(t.exposed.dpSeconds).toBe(0);
    expect(t.exposed.ppSeconds).toBe(0);
  });

  it("gradient buckets overlap the last backward: only the last bucket is exposed when the cost model says it hides", () => {
    // B + W = 2 s per micro-batch; the reduction R <= 2 s fits behind it (dpExposedSeconds = 0 analytically),
    // but the last bucket's gradients exist only when the backward ends (PyTorch DDP / Megatron-LM behaviour).
    fc.assert(fc.property(fc.integer({ min: 1, max: 16 }), fc.double({ min: 0, max: 2, noNaN: true }), (buckets, r) => {
      const t = simulateInput(one(stage({ dp: dp({ reduceOnceSeconds: r, buckets }) }), 3));
      expect(t.exposed.dpSeconds).toBeCloseTo(r / buckets, 9);
    }), { numRuns: 50 });
  });

  it("a reduction longer than the backward is exposed by R - B plus the first piece's wait", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 16 }), fc.double({ min: 2, max: 10, noNaN: true }), (buckets, r) => {
      const t = simulateInput(one(stage({ dp: dp({ reduceOnceSeconds: r, buckets }) }), 3));
      expect(t.exposed.dpSeconds).toBeCloseTo(r - 2 + 2 / buckets, 9);
    }), { numRuns: 50 });
  });

  it("ZeRO-3 gathers are prefetched one bucket ahead: only the step's first gather and last reduction are exposed", () => {
    const buckets = 4;
    const g = 0.2; // per pass: 0.05 per bucket, well under a piece of forward (0.25) or backward (0.5)
    const t = simulateInput(one(stage({ dp: dp({ gatherForwardSeconds: g, gatherBackwardSeconds: g, reducePerMicroBatchSeconds: g, buckets }) }), 6));
    expect(t.exposed.dpSeconds).toBeCloseTo(g / buckets + g / buckets, 12);
    expect(t.ranks[0]!.busySeconds[Stream.dp]).toBeCloseTo(6 * 3 * g, 9);
  });

  it("ZeRO-3 gathers slower than the forward stall it; prefetching during the backward hides more than the cost model credits", () => {
    const m = 6;
    const g = 1.5; // forward 1 s (the cost model hides the gather only behind it), backward 1 s
    const t = simulateInput(one(stage({ w: 0, dp: dp({ gatherForwardSeconds: g, buckets: 4 }) }), m));
    const analytic = m * (g - 1); // dpExposedSeconds: m * hide(perMicroBatchForward, forward)
    expect(t.exposed.dpSeconds).toBeGreaterThan(0);
    expect(t.exposed.dpSeconds).toBeLessThan(analytic);
    expect(t.stepSeconds).toBeCloseTo(m * 2 + t.exposed.dpSeconds, 9);
  });

  it("a pipeline hides later stages' reductions in the drain; stage 0's last bucket stays exposed", () => {
    const p = 4;
    const stages = Array.from({ length: p }, () => stage({ dp: dp({ reduceOnceSeconds: 1, buckets: 4 }) }));
    const t = simulateInput({ schedule: "1f1b", microBatches: 8, virtualStages: 1, stages, ppTransferSeconds: 0 });
    expect(t.exposed.dpSeconds).toBeCloseTo(0.25, 12);
    expect(t.stepSeconds).toBeCloseTo((8 + p - 1) * 3 + 0.25, 9);
  });

  it("pipeline transfers on the fill and drain chains are exposed; free transfers cost nothing", () => {
    const p = 4;
    const free = simulateInput({ schedule: "gpipe", microBatches: 4, virtualStages: 1, stages: Array.from({ length: p }, () => stage()), ppTransferSeconds: 0 });
    const paid = simulateInput({ schedule: "gpipe", microBatches: 4, virtualStages: 1, stages: Array.from({ length: p }, () => stage()), ppTransferSeconds: 0.1 });
    expect(free.exposed.ppSeconds).toBe(0);
    expect(paid.exposed.ppSeconds).toBeGreaterThanOrEqual(2 * (p - 1) * 0.1 - 1e-9);
    expect(paid.stepSeconds).toBeGreaterThanOrEqual(free.stepSeconds + 2 * (p - 1) * 0.1 - 1e-9);
  });

  it("the optimizer runs after every stage's gradients are reduced; the slowest stage's optimizer ends the step", () => {
    const stages = [stage({ optimizerSeconds: 0.5 }), stage({ optimizerSeconds: 0.75 })];
    const t = simulateInput({ schedule: "1f1b", microBatches: 4, virtualStages: 1, stages, ppTransferSeconds: 0 });
    expect(t.exposed.optimizerSeconds).toBeCloseTo(0.75, 12);
    expect(t.stepSeconds).toBeCloseTo(5 * 3 + 0.75, 9);
  });
});

describe("the breakdown names what the critical rank waits for", () => {
  it("a 1F1B pipeline whose transfers run while the critical stage computes still shows its fill and drain as bubble", () => {
    // gpt3-175b tp 8 x pp 8, 768 micro-batches: the critical path runs mostly through the other stages, whose
    // transfers overlap the last stage's own passes; summing them whole reported 1.06 s of pp and bubble 0
    const flags = { model: "gpt3-175b", gpus: 128, tp: 8, pp: 8, zero: 1, sp: false } as const;
    const { model, shape } = loadContext(flags, true);
    const plan = resolvePlan(model, shape, planInputFrom(flags));
    const t = simulate(model, shape, plan).timeline;
    const p = plan.pp;
    const m = plan.globalBatch / (plan.dp * plan.microBatch);
    const ideal = (p - 1) / (m + p - 1); // uniform stages, free transfers
    expect(t.exposed.bubbleSeconds / t.stepSeconds).toBeGreaterThan(0.5 * ideal);
    expect(t.exposed.ppSeconds).toBeLessThan(t.exposed.bubbleSeconds);
    const parts = Object.values(t.exposed).reduce((a, b) => a + b, 0);
    expect(parts).toBeCloseTo(t.stepSeconds, 6);
  });
});

