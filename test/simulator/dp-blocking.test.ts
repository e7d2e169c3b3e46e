import { describe, expect, it } from "vitest";
import { estimate } from "../../src/planner/cost/estimate.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { simulate, simulateJittered } from "../../src/simulator/simulate.js";
import { OpKind } from "../../src/simulator/types.js";
import { InputError } from "../../src/spec/errors.js";
import { planFor, shapeOf } from "../helpers.js";

/**
 * plan.dpCommBlocking: every data-parallel collective runs in line with the passes (the executor's ranks run
 * each reduce-scatter and gather before going on), so none of it hides behind compute.
 */
describe("data-parallel collectives in line with the passes (dpCommBlocking)", () => {
  const shape = shapeOf("dgx-h100", 8);

  it("shows every data-parallel second in the step, in the timeline and in the formula alike", () => {
    for (const zero of [2, 3] as const) {
      const input = { tp: 2, zero, globalBatch: 16, flashAttention: true };
      const { model, plan } = planFor("llama3-8b", shape, { ...input, dpCommBlocking: true });
      const label = `zero ${zero}`;
      const m = estimate(model, shape, plan).pipeline.microBatches;
      const dp = planCosts(model, shape, plan).stages[0]!.dp;
      const all = dp.reduceOnce.seconds + dp.gatherOnce.seconds + m * (dp.perMicroBatchForward.seconds + dp.perMicroBatchBackward.seconds);
      expect(all, label).toBeGreaterThan(0);
      const formula = estimate(model, shape, plan).time;
      const timeline = simulate(model, shape, plan).estimate.time;
      expect(formula.breakdown.dpCommSeconds, label).toBeCloseTo(all, 12);
      // One stage: the simulated step is the stage's own timeline, the same sum.
      expect(timeline.breakdown.dpCommSeconds, label).toBeCloseTo(all, 9);
      expect(timeline.stepSeconds, label).toBeCloseTo(formula.stepSeconds, 9);
      // In line, the step is longer than with the traffic overlapped, by at most all of it.
      const before = simulate(model, shape, planFor("llama3-8b", shape, input).plan).estimate.time.stepSeconds;
      const grew = timeline.stepSeconds - before;
      expect(grew, label).toBeGreaterThan(0);
      expect(grew, label).toBeLessThanOrEqual(all * (1 + 1e-9));
    }
  });

  it("stretches every stage's passes with a pipeline, in the formula as in the timeline", () => {
    const big = shapeOf("dgx-h100", 16);
    for (const pp of [2, 4]) {
      for (const zero of [2, 3] as const) {
        for (const schedule of ["1f1b", "interleaved"] as const) {
          const input = { tp: 2, pp, zero, globalBatch: 32, flashAttention: true, schedule, ...(schedule === "interleaved" ? { virtualStages: 2 } : {}) };
          const { model, plan } = planFor("llama3-8b", big, { ...input, dpCommBlocking: true });
          const label = `pp ${pp} zero ${zero} ${schedule}`;
          const costs = planCosts(model, big, plan);
          const perMicroBatch = costs.stages.map((s) => s.dp.perMicroBatchForward.seconds + s.dp.perMicroBatchBackward.seconds);
          costs.stages.forEach((s, i) => expect(s.blockingDpSeconds, label).toBe(perMicroBatch[i]));
          const formula = estimate(model, big, plan);
          const timeline = simulate(model, big, plan).estimate.time;
          // The formula's schedule over the stretched stages is the event simulator's within 1%.
          expect(Math.abs(formula.time.stepSeconds / timeline.stepSeconds - 1), label).toBeLessThan(0.01);
          // The critical stage's in-line traffic is reported as data-parallel time, every micro-batch's.
          expect(formula.time.breakdown.dpCommSeconds, label).toBeGreaterThanOrEqual(formula.pipeline.microBatches * Math.min(...perMicroBatch));
          // Overlapped, the same plan is faster: the fill and drain stretched too, not only the steady state.
          const overlapped = estimate(model, big, planFor("llama3-8b", big, input).plan).time;
          expect(formula.time.stepSeconds, label).toBeGreaterThan(overlapped.stepSeconds);
          expect(formula.time.breakdown.bubbleSeconds, label).toBeGreaterThan(overlapped.breakdown.bubbleSeconds);
        }
      }
    }
  });

  it("moves each unit's traffic in a collective of its own, as the executor does (layers, embedding, head)", () => {
    const small = shapeOf("dgx-h100", 4);
    const buckets = (input: Record<string, unknown>) => {
      const { model, plan } = planFor("tiny-gpt", small, { zero: 2, globalBatch: 8, ...input });
      return planCosts(model, small, plan).stages.map((s) => s.dp.buckets);
    };
    // tiny-gpt has 2 layers: one stage holds embedding, 2 layers and head; of two, each holds a layer and one end.
    expect(buckets({ dpCommBlocking: true })).toEqual([4]);
    expect(buckets({ dpCommBlocking: true, pp: 2 })).toEqual([2, 2]);
    // Overlapped, its few kilobytes travel in one 25 MiB bucket per stage.
    expect(buckets({})).toEqual([1]);
  });

  it("gathers a pass's weights after its input has arrived from the previous stage, as the executor does", () => {
    const big = shapeOf("dgx-h100", 16);
    const { model, plan } = planFor("llama3-8b", big, { tp: 2, pp: 2, zero: 3, globalBatch: 32, flashAttention: true, dpCommBlocking: true });
    const ops = simulate(model, big, plan).timeline.ops;
    const all = [...ops.kind.keys()];
    const arrival = (mb: number) => {
      const send = all.find((op) => ops.kind[op] === OpKind.pp && ops.rank[op] === 0 && ops.microBatch[op] === mb && ops.index[op] === 0);
      return ops.endSeconds[send!]!;
    };
    const gathers = all.filter((op) => ops.kind[op] === OpKind.dpGather && ops.rank[op] === 1 && ops.index[op] === 0);
    const firstGathers = new Map<number, number>();
    for (const op of gathers) {
      const mb = ops.microBatch[op]!;
      const seen = firstGathers.get(mb);
      if (seen === undefined || ops.startSeconds[op]! < ops.startSeconds[seen]!) firstGathers.set(mb, op);
    }
    expect(firstGathers.size).toBe(estimate(model, big, plan).pipeline.microBatches);
    for (const [mb, op] of firstGathers) expect(ops.startSeconds[op]!).toBeGreaterThanOrEqual(arrival(mb) - 1e-12);
  });

  it("puts the replicas' waits at its collectives whole into the step (the executor's ZeRO-2/3 on one stage)", () => {
    const { model, plan } = planFor("llama3-8b", shape, { tp: 2, zero: 2, globalBatch: 16, flashAttention: true, dpCommBlocking: true });
    const exact = simulate(model, shape, plan).estimate.time;
    let waits = 0;
    const waitSeconds = (sd: number) => {
      const w = 1e-4 + 0.5 * sd;
      waits += w;
      return w;
    };
    const j = simulateJittered(model, shape, plan, { logSdAt: () => 0, samples: 1, normal: () => 0, dataParallel: { members: 4, passLogSdAt: () => 0.1, waitSeconds } });
    expect(waits).toBeGreaterThan(0);
    expect(j.estimate.time.stepSeconds - exact.stepSeconds).toBeCloseTo(waits, 9);
    expect(j.estimate.time.breakdown.dpCommSeconds - exact.breakdown.dpCommSeconds).toBeCloseTo(waits, 9);
  });

  it("runs no data-parallel op beside a pass of its stage", () => {
    const { model, plan } = planFor("llama3-8b", shape, { tp: 2, zero: 3, globalBatch: 16, flashAttention: true, dpCommBlocking: true });
    const ops = simulate(model, shape, plan).timeline.ops;
    const spans = (kinds: readonly number[]) => [...ops.kind.keys()].filter((op) => kinds.includes(ops.kind[op]!) && ops.rank[op] === 0)
      .map((op) => [ops.startSeconds[op]!, ops.endSeconds[op]!] as const);
    const dp = spans([OpKind.dpGather, OpKind.dpReduce]);
    const passes = spans([OpKind.forward, OpKind.backward]);
    expect(dp.length).toBeGreaterThan(passes.length);
    const overlap = (a: readonly [number, number], b: readonly [number, number]) => Math.min(a[1], b[1]) - Math.max(a[0], b[0]);
    for (const d of dp) for (const p of passes) expect(overlap(d, p)).toBeLessThanOrEqual(1e-12);
  });

  it("is refused with dpCommExposed or parameter servers, naming the field", () => {
    const refused = (input: Record<string, unknown>) => {
      try {
        planFor("llama3-8b", shape, { globalBatch: 16, dpCommBlocking: true, ...input });
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as InputError).message;
      }
      return "accepted";
    };
    expect(refused({ zero: 1, dpCommExposed: true })).toMatch(/dpCommBlocking = true .*false with dpCommExposed/);
    expect(refused({ parameterServers: 2, zero: 0 })).toMatch(/dpCommBlocking = true .*false with parameter servers/);
    expect(refused({ zero: 1 })).toMatch(/zero = 1 .*2 or 3 with dpCommBlocking/);
    expect(refused({ zero: 2 })).toBe("accepted");
    expect(refused({ zero: 3, pp: 2 })).toBe("accepted");
    // One data-parallel rank: nothing to run in line; the knob is dropped.
    expect(planFor("llama3-8b", shapeOf("dgx-h100", 1), { globalBatch: 16, zero: 2, dpCommBlocking: true }).plan.dpCommBlocking).toBeUndefined();
  });
});
