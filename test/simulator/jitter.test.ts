import { describe, expect, it } from "vitest";
import { simulate, simulateJittered, type PassJitter } from "../../src/simulator/simulate.js";
import { mulberry32, standardNormal } from "../../src/executor/model/random.js";
import { OpKind } from "../../src/simulator/types.js";
import { planFor, shapeOf } from "../helpers.js";

const shape = shapeOf("dgx-h100", 8);

function jitter(logSd: number, seed = 7, samples = 63): PassJitter {
  return { logSdAt: () => logSd, samples, normal: standardNormal(mulberry32(seed)) };
}

describe("simulateJittered: pass times with a measured spread", () => {
  const pipeline = planFor("llama3-8b", shape, { tp: 2, pp: 4, schedule: "1f1b", globalBatch: 16, flashAttention: true });

  it("is simulate() exactly when the spread is zero", () => {
    const { model, plan } = pipeline;
    expect(simulateJittered(model, shape, plan, jitter(0)).estimate).toEqual(simulate(model, shape, plan).estimate);
  });

  it("repeats with the same draws and changes with others", () => {
    const { model, plan } = pipeline;
    const a = simulateJittered(model, shape, plan, jitter(0.3, 1)).estimate.time.stepSeconds;
    expect(simulateJittered(model, shape, plan, jitter(0.3, 1)).estimate.time.stepSeconds).toBe(a);
    expect(simulateJittered(model, shape, plan, jitter(0.3, 2)).estimate.time.stepSeconds).not.toBe(a);
  });

  it("turns the spread into waits between stages: a longer step and a larger bubble than exact pass times give", () => {
    const { model, plan } = pipeline;
    const exact = simulate(model, shape, plan).estimate;
    const j = simulateJittered(model, shape, plan, jitter(0.3));
    expect(j.estimate.time.stepSeconds).toBeGreaterThan(exact.time.stepSeconds * 1.02);
    expect(j.estimate.pipeline.bubbleFraction).toBeGreaterThan(exact.pipeline.bubbleFraction + 0.01);
    // The Estimate is of the stage the exact schedule makes critical; every sample is reported, shortest first.
    expect(j.criticalStage).toBe(simulate(model, shape, plan).timeline.criticalRank);
    expect(j.stepSeconds).toHaveLength(63);
    expect([...j.stepSeconds].sort((x, y) => x - y)).toEqual(j.stepSeconds);
  });

  it("keeps the mean pass: with nothing to wait for, the median step stays within 1.5% of the exact one", () => {
    // One stage, 64 micro-batches: the step sums 128 jittered passes, so a factor of mean exp(sigma^2/2)
    // (4.6% at sigma 0.3) instead of one would show.
    const { model, plan } = planFor("llama3-8b", shape, { tp: 8, pp: 1, globalBatch: 64, flashAttention: true });
    const exact = simulate(model, shape, plan).timeline.stepSeconds;
    const samples = simulateJittered(model, shape, plan, jitter(0.3)).stepSeconds;
    const median = samples[31]!;
    expect(samples[0]).toBeLessThan(exact);
    expect(samples[62]).toBeGreaterThan(exact);
    expect(Math.abs(median / exact - 1)).toBeLessThan(0.015);
  });

  it("refuses a sample count that is not a positive integer, naming it", () => {
    const { model, plan } = pipeline;
    expect(() => simulateJittered(model, shape, plan, jitter(0.3, 1, 0))).toThrow(/samples = 0; want an integer >= 1/);
  });

  describe("sync points inside passes (tp and cp replicas waiting at their collectives)", () => {
    const single = planFor("llama3-8b", shape, { tp: 8, pp: 1, globalBatch: 8, flashAttention: true });
    const syncs = [{ forward: [{ group: "tp" as const, members: 8, count: 4 }], backward: [{ group: "tp" as const, members: 8, count: 6 }] }];

    it("adds each collective's wait to its pass, counts the waits as tp communication, not bubble, and cuts passes into equal segments", () => {
      const { model, plan } = single;
      const exact = simulate(model, shape, plan).estimate;
      const segments: number[] = [];
      const wait = 1e-3;
      const j = simulateJittered(model, shape, plan, { ...jitter(0), syncs, syncWaitSeconds: (segment, members) => (segments.push(segment), members === 8 ? wait : NaN) });
      const m = exact.pipeline.microBatches;
      const waits = m * (4 + 6) * wait;
      expect(j.estimate.time.stepSeconds).toBeCloseTo(exact.time.stepSeconds + waits, 9);
      expect(j.estimate.time.breakdown.tpCommSeconds).toBeCloseTo(exact.time.breakdown.tpCommSeconds + waits, 9);
      expect(j.estimate.time.breakdown.bubbleSeconds).toBeCloseTo(exact.time.breakdown.bubbleSeconds, 9);
      // Forward passes in 5 segments, backward passes in 7.
      const pass = simulate(model, shape, plan).timeline;
      const forward = [...pass.ops.kind].findIndex((k) => k === 0);
      const backward = [...pass.ops.kind].findIndex((k) => k === 1);
      const length = (op: number) => pass.ops.endSeconds[op]! - pass.ops.startSeconds[op]!;
      expect(new Set(segments.map((x) => x.toPrecision(9)))).toEqual(new Set([(length(forward) / 5).toPrecision(9), (length(backward) / 7).toPrecision(9)]));
    });

    it("is simulate() exactly when neither the passes vary nor the collectives wait", () => {
      const { model, plan } = single;
      expect(simulateJittered(model, shape, plan, { ...jitter(0), syncs, syncWaitSeconds: () => 0 }).estimate).toEqual(simulate(model, shape, plan).estimate);
    });

    it("shares a stage's sync points among its chunks in proportion to their time, keeping each pass's count (interleaved 1F1B)", () => {
      const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp: 4, virtualStages: 2, schedule: "interleaved", globalBatch: 16, flashAttention: true });
      // Odd counts that differ by stage: a stage's two chunks cannot each round to half of them.
      const counts = [13, 9, 11, 15];
      const perStage = counts.map((count) => ({ forward: [{ group: "tp" as const, members: 2, count }], backward: [] }));
      const exact = simulate(model, shape, plan).estimate;
      const j = simulateJittered(model, shape, plan, { ...jitter(0), syncs: perStage, syncWaitSeconds: () => 1e-3 });
      const extra = j.estimate.time.breakdown.tpCommSeconds - exact.time.breakdown.tpCommSeconds;
      expect(extra).toBeCloseTo(16 * counts[j.criticalStage]! * 1e-3, 9);
      const b = j.estimate.time.breakdown;
      const sum = b.computeSeconds + b.tpCommSeconds + b.cpCommSeconds + b.ppCommSeconds + b.dpCommSeconds + b.bubbleSeconds + b.optimizerSeconds + b.epCommSeconds;
      expect(sum).toBeCloseTo(j.estimate.time.stepSeconds, 9);
    });

    it("keeps a pass's count and segment length when the pass runs in pieces between data-parallel buckets (ZeRO-3)", () => {
      const { model, plan } = planFor("llama3-8b", shape, { tp: 2, dp: 4, zero: 3, globalBatch: 8, flashAttention: true });
      const segments = new Set<string>();
      const exact = simulate(model, shape, plan);
      const j = simulateJittered(model, shape, plan, { ...jitter(0), syncs: [{ forward: [{ group: "tp", members: 2, count: 13 }], backward: [] }], syncWaitSeconds: (l) => (segments.add(l.toPrecision(9)), 1e-3) });
      expect(j.estimate.time.breakdown.tpCommSeconds - exact.estimate.time.breakdown.tpCommSeconds).toBeCloseTo(exact.estimate.pipeline.microBatches * 13 * 1e-3, 9);
      // Pieces of micro-batch 0's forward: several, and one segment length, the whole pass's over 14.
      const ops = exact.timeline.ops;
      const pieces = [...ops.kind.keys()].filter((op) => ops.kind[op] === 0 && ops.microBatch[op] === 0);
      expect(pieces.length).toBeGreaterThan(1);
      const pass = pieces.reduce((a, op) => a + ops.endSeconds[op]! - ops.startSeconds[op]!, 0);
      expect([...segments]).toEqual([(pass / 14).toPrecision(9)]);
    });
  });

  describe("data-parallel collectives as sync points (replicas of a stage in different pipelines)", () => {
    const zero3 = planFor("llama3-8b", shape, { tp: 2, dp: 4, zero: 3, globalBatch: 8, flashAttention: true });

    it("waits at every data-parallel op, after the drift of the passes since the previous one, counted as data-parallel traffic", () => {
      const { model, plan } = zero3;
      const exact = simulate(model, shape, plan);
      const calls: { sd: number; members: number }[] = [];
      const sigma = 0.2;
      const dataParallel = { members: 4, passLogSdAt: () => sigma, waitSeconds: (sd: number, members: number) => (calls.push({ sd, members }), 1e-3) };
      const j = simulateJittered(model, shape, plan, { ...jitter(0), dataParallel });
      const ops = exact.timeline.ops;
      const dpOps = [...ops.kind].filter((k) => k === OpKind.dpGather || k === OpKind.dpReduce).length;
      expect(dpOps).toBeGreaterThan(2);
      expect(calls).toHaveLength(dpOps);
      expect(new Set(calls.map((c) => c.members))).toEqual(new Set([4]));
      // ZeRO-3 gathers the first layers' weights before any pass: nothing to drift over yet.
      expect(calls[0]!.sd).toBe(0);
      // The drifts are over the passes between consecutive ops in the stage's program (a prefetched gather and
      // the previous piece's reduction meet after none): their variances add up to at most every pass's.
      const passes = [...ops.kind.keys()].filter((op) => ops.kind[op]! < OpKind.optimizer).map((op) => ops.endSeconds[op]! - ops.startSeconds[op]!);
      const variance = passes.reduce((a, t) => a + (sigma * t) ** 2, 0);
      const drifted = calls.reduce((a, c) => a + c.sd ** 2, 0);
      expect(calls.filter((c) => c.sd > 0).length).toBeGreaterThan(dpOps / 3);
      expect(drifted).toBeLessThanOrEqual(variance * (1 + 1e-12));
      expect(drifted).toBeGreaterThan(0.5 * variance);
      // The waits sit on the data-parallel stream: overlapped, the step grows by less than their sum.
      const grew = j.estimate.time.stepSeconds - exact.estimate.time.stepSeconds;
      expect(grew).toBeGreaterThan(0);
      expect(grew).toBeLessThanOrEqual(dpOps * 1e-3 + 1e-12);
    });

    it("is simulate() exactly when the collectives do not wait, and without members nothing waits", () => {
      const { model, plan } = zero3;
      const exact = simulate(model, shape, plan).estimate;
      expect(simulateJittered(model, shape, plan, { ...jitter(0), dataParallel: { members: 4, passLogSdAt: () => 0.2, waitSeconds: () => 0 } }).estimate).toEqual(exact);
      expect(simulateJittered(model, shape, plan, { ...jitter(0), syncWaitSeconds: () => 1e-3 }).estimate).toEqual(exact);
      expect(simulateJittered(model, shape, plan, { ...jitter(0), dataParallel: { members: 1, passLogSdAt: () => 0.2, waitSeconds: () => 1e-3 } }).estimate).toEqual(exact);
    });
  });
});
