import { describe, expect, it } from "vitest";
import { bubbleOf, pipelineWindows } from "../../src/executor/measure/report.js";
import { concurrencySlowdown, dataParallelWaitAt, JITTER_SAMPLES, loadShare, passSpreadAt, predictOnProfile, profileJitter, profileShape, spreadAt, syncWaitAt, syncWaitsAt, type DeviceProfile } from "../../src/executor/measure/profile.js";
import { passSpreads } from "../../src/executor/measure/calibrate.js";
import type { RankResult, StepRecord } from "../../src/executor/run/job.js";

const profile: DeviceProfile = {
  version: 1, measuredAt: "2026-11-22T00:00:00Z", machine: { cpus: 4, cpuModel: "test", node: "v20", platform: "linux" }, backend: "wasm",
  matmul: [{ n: 64, seconds: 1e-4, flopsPerSecond: 5e9 }], peakFlopsPerSecond: 5e9, opOverheadSeconds: 1e-4, elementwiseBytesPerSecond: 1e9,
  memcpyBytesPerSecond: 8e9, collectiveBytesPerSecond: 3e9, collectiveLatencySeconds: 3e-6, fit: [],
  concurrency: { ranks: 4, aloneSeconds: 0.1, concurrentSeconds: 0.16, slowdown: 1.6 },
};

describe("device profile: ranks computing at once", () => {
  it("slows each rank by the measured factor with every core busy, linearly from one rank, and no further", () => {
    expect(concurrencySlowdown(profile, 1)).toBe(1);
    expect(concurrencySlowdown(profile, 4)).toBeCloseTo(1.6, 12);
    expect(concurrencySlowdown(profile, 2)).toBeCloseTo(1.2, 12);
    expect(concurrencySlowdown(profile, 16)).toBeCloseTo(1.6, 12);
    const { concurrency: _, ...old } = profile;
    expect(concurrencySlowdown(old, 4)).toBe(1);
  });

  it("the cluster of n ranks computes at the slowed rates", () => {
    const alone = profileShape(profile, 1).spec.gpu;
    const four = profileShape(profile, 4).spec.gpu;
    expect(four.peakFlopsPerSecond.fp32! * 1.6).toBeCloseTo(alone.peakFlopsPerSecond.fp32!, 3);
    expect(four.hbmBytesPerSecond * 1.6).toBeCloseTo(alone.hbmBytesPerSecond, 3);
    expect(four.efficiency.matmulOverheadSeconds!).toBeCloseTo(1.6 * alone.efficiency.matmulOverheadSeconds!, 15);
  });
});

describe("device profile: pass-time jitter", () => {
  const forward = { meanSeconds: 0.002, logSd: 0.3 };
  const backward = { meanSeconds: 0.008, logSd: 0.15 };

  it("passes through both measured points, on a power law of the pass's length", () => {
    const at = spreadAt(forward, backward);
    expect(at(0.002)).toBeCloseTo(0.3, 12);
    expect(at(0.008)).toBeCloseTo(0.15, 12);
    // Halving per quadrupling: k = 1/2, so 0.004 s sits at 0.3 / sqrt(2).
    expect(at(0.004)).toBeCloseTo(0.3 / Math.SQRT2, 12);
    expect(spreadAt(backward, forward)(0.004)).toBeCloseTo(at(0.004), 12);
  });

  it("keeps the exponent in [0, 1] and the spread at most 1", () => {
    // Longer passes spreading more: no power law downwards, the larger spread everywhere (k = 0).
    expect(spreadAt({ meanSeconds: 0.002, logSd: 0.1 }, { meanSeconds: 0.008, logSd: 0.2 })(0.5)).toBeCloseTo(0.2, 12);
    // Spread falling faster than a fixed-size delay's would: capped at k = 1.
    const steep = spreadAt({ meanSeconds: 0.001, logSd: 0.8 }, { meanSeconds: 0.002, logSd: 0.1 });
    expect(steep(0.004)).toBeCloseTo(0.2, 12);
    expect(steep(1e-6)).toBe(1);
  });

  it("takes a run's spread and waits at its load: the measurement with fewer ranks, every core's, or linearly between", async () => {
    expect(loadShare(2, 2, 16)).toBe(0);
    expect(loadShare(1, 2, 16)).toBe(0);
    expect(loadShare(9, 2, 16)).toBeCloseTo(0.5, 12);
    expect(loadShare(32, 2, 16)).toBe(1);
    expect(loadShare(2, 2, 2)).toBe(1);
    const fewer = { ranks: 2, samples: 300, forward: { meanSeconds: 0.002, logSd: 0.1 }, backward: { meanSeconds: 0.008, logSd: 0.05 } };
    const busy = { shape: "test", ranks: 6, samples: 900, forward, backward };
    const at = (ranks: number, j: NonNullable<DeviceProfile["passJitter"]> = { ...busy, fewerRanks: fewer }) => passSpreadAt(j, 4, ranks)(0.002);
    expect(at(2)).toBeCloseTo(0.1, 12);
    expect(at(6)).toBeCloseTo(0.3, 12);
    expect(at(4)).toBeCloseTo(0.2, 12);
    expect(at(64)).toBeCloseTo(0.3, 12);
    expect(passSpreadAt({ ...busy, fewerRanks: fewer }, 4, 2)(0.008)).toBeCloseTo(0.05, 12);
    // Without the second measurement (a 2-core machine, older profiles): every core's at any load; an
    // older profile's copies were the machine's cores.
    expect(at(2, busy)).toBeCloseTo(0.3, 12);
    const { ranks: _, ...older } = busy;
    expect(at(3, { ...older, fewerRanks: fewer })).toBeCloseTo(0.2, 12);
    const busyPoints = [{ segmentSeconds: 1e-4, waitSeconds: 1e-4 }, { segmentSeconds: 1e-3, waitSeconds: 4e-4 }];
    const fewerPoints = [{ segmentSeconds: 1e-4, waitSeconds: 5e-5 }, { segmentSeconds: 1e-3, waitSeconds: 2e-4 }];
    const waits = { members: 2, ranks: 16, points: busyPoints, fewerRanks: { ranks: 2, points: fewerPoints } };
    for (const [ranks, want] of [[2, syncWaitAt(fewerPoints, 2)(5e-4, 2)], [16, syncWaitAt(busyPoints, 2)(5e-4, 2)]] as const) {
      expect(syncWaitsAt(waits, ranks).sync(5e-4, 2), `${ranks} ranks`).toBeCloseTo(want, 15);
    }
    expect(syncWaitsAt(waits, 9).sync(5e-4, 2)).toBeCloseTo((syncWaitAt(fewerPoints, 2)(5e-4, 2) + syncWaitAt(busyPoints, 2)(5e-4, 2)) / 2, 15);
    expect(syncWaitsAt(waits, 2).dataParallel(1e-3, 2)).toBeCloseTo(dataParallelWaitAt(fewerPoints)(1e-3, 2), 15);
    // The prediction of a pp2 run on a 16-core machine simulates the two-rank spread.
    const { planFor } = await import("../helpers.js");
    const p: DeviceProfile = { ...profile, machine: { ...profile.machine, cpus: 16 }, passJitter: { ...busy, ranks: 16, fewerRanks: fewer }, syncWaits: waits };
    const { model, plan } = planFor("tiny-gpt", profileShape(p, 2), { pp: 2, globalBatch: 8, flashAttention: false });
    expect(profileJitter(p, model, plan, 2)!.logSdAt(0.002)).toBeCloseTo(0.1, 12);
    expect(profileJitter(p, model, plan, 16)!.logSdAt(0.002)).toBeCloseTo(0.3, 12);
  });

  it("measures the spread within each step, without each step's first forward (its weights' first use, priced apart)", () => {
    const step = (first: number, forwards: number[], backwards: number[]) => ({ forwardPassSeconds: [first, ...forwards], backwardPassSeconds: backwards });
    const copies = [
      // Within each step, forwards of 1 and 2 ms (and 10 and 20): log 2 apart about each step's mean.
      [step(0.05, [0.001, 0.002], [0.002, 0.008]), step(0.05, [0.01, 0.02], [0.004, 0.004])],
      // Whole steps at two levels, nothing varying within either: no spread.
      [step(0.09, [0.004, 0.004], [0.004, 0.004]), step(0.09, [0.008, 0.008], [0.016, 0.016])],
    ];
    const s = passSpreads(copies);
    expect(s.samples).toBe(4 * 2 + 4 * 2);
    expect(s.forward.meanSeconds).toBeCloseTo((0.001 + 0.002 + 0.01 + 0.02 + 0.004 * 2 + 0.008 * 2) / 8, 12);
    // Four steps of two forwards: 4 degrees of freedom, two steps each deviating by ln 2 / 2 twice.
    expect(s.forward.logSd).toBeCloseTo(Math.sqrt((4 * (Math.LN2 / 2) ** 2) / 4), 12);
    // Backwards: only the first step of the first copy varies within (2 and 8 ms: ln 4 / 2 each side).
    expect(s.backward.logSd).toBeCloseTo(Math.sqrt((2 * Math.LN2 ** 2) / 4), 12);
    expect(() => passSpreads([[{ forwardPassSeconds: [0.05], backwardPassSeconds: [0.004] }]])).toThrow(/0 passes/);
  });

  it("applies where ranks wait on one another inside a step (stages, tp and cp replicas), and to profiles that measured it", async () => {
    const { planFor } = await import("../helpers.js");
    const waits = { members: 2, ranks: 4, points: [{ segmentSeconds: 1e-4, waitSeconds: 5e-5 }, { segmentSeconds: 1e-3, waitSeconds: 2e-4 }] };
    const p: DeviceProfile = { ...profile, passJitter: { shape: "test", samples: 320, forward, backward }, syncWaits: waits };
    const { syncWaits: _, ...noWaits } = p;
    const plan = (input: Record<string, number>) => planFor("tiny-gpt", profileShape(p, 2), { globalBatch: 8, flashAttention: false, ...input });
    for (const split of [{ pp: 2 }, { tp: 2 }, { cp: 2 }]) {
      const { model, plan: pl } = plan(split);
      expect(profileJitter(p, model, pl, 2), JSON.stringify(split)).toBeDefined();
      expect(profileJitter(profile, model, pl, 2), JSON.stringify(split)).toBeUndefined();
    }
    // One stage: the pass-time spread has nothing to turn into waits; only the collectives' waits, once.
    const tp = plan({ tp: 2 });
    const once = profileJitter(p, tp.model, tp.plan, 2)!;
    expect(once.samples).toBe(1);
    expect(once.logSdAt(1e-3)).toBe(0);
    expect(profileJitter(noWaits, tp.model, tp.plan, 2)).toBeUndefined();
    // Data parallel alone: its collectives are the sync points (dp replicas drifting apart), the waits added
    // once; both measurements needed (the passes' spread for the drift, the collectives' hand-over).
    const dp = plan({ dp: 2 });
    const dpJitter = profileJitter(p, dp.model, dp.plan, 2)!;
    expect(dpJitter.dataParallel?.members).toBe(2);
    expect(dpJitter.dataParallel?.passLogSdAt(0.002)).toBeCloseTo(0.3, 12);
    expect(dpJitter.samples).toBe(1);
    expect(profileJitter(noWaits, dp.model, dp.plan, 2)).toBeUndefined();
    const { passJitter: __, ...noSpread } = p;
    expect(profileJitter(noSpread, dp.model, dp.plan, 2)).toBeUndefined();
    // cp alone: its ranks reduce gradients together but meet at every layer, so they do not drift apart.
    const cpOnly = plan({ cp: 2 });
    expect(profileJitter(p, cpOnly.model, cpOnly.plan, 2)!.dataParallel).toBeUndefined();
    // Parameter servers: workers push and pull without waiting for one another.
    const ps = plan({ dp: 2, parameterServers: 1 });
    expect(profileJitter(p, ps.model, ps.plan, 2)).toBeUndefined();
    // Sync points per micro-batch are the executor's blocking collectives (accounting.ts passCalls):
    // tp2 with SP 13 forward and 15 backward; cp2 K and V gathered per layer forward (2 x 2), again
    // backward with their gradients reduce-scattered (4 x 2).
    expect(once.syncs).toEqual([{
      forward: [{ group: "tp", members: 2, count: 13 }, { group: "cp", members: 1, count: 0 }, { group: "ep", members: 1, count: 0 }],
      backward: [{ group: "tp", members: 2, count: 15 }, { group: "cp", members: 1, count: 0 }, { group: "ep", members: 1, count: 0 }],
    }]);
    const cp = plan({ cp: 2 });
    expect(profileJitter(p, cp.model, cp.plan, 2)!.syncs).toEqual([{
      forward: [{ group: "tp", members: 1, count: 0 }, { group: "cp", members: 2, count: 4 }, { group: "ep", members: 1, count: 0 }],
      backward: [{ group: "tp", members: 1, count: 0 }, { group: "cp", members: 2, count: 8 }, { group: "ep", members: 1, count: 0 }],
    }]);
    // Expert parallel: each MoE layer's dispatch and combine all-to-alls forward, their gradients' backward (2 x 2 each).
    const ep = planFor("tiny-moe", profileShape(p, 2), { dp: 2, ep: 2, globalBatch: 8, flashAttention: false });
    expect(profileJitter(p, ep.model, ep.plan, 2)!.syncs).toEqual([{
      forward: [{ group: "tp", members: 1, count: 0 }, { group: "cp", members: 1, count: 0 }, { group: "ep", members: 2, count: 4 }],
      backward: [{ group: "tp", members: 1, count: 0 }, { group: "cp", members: 1, count: 0 }, { group: "ep", members: 2, count: 4 }],
    }]);
  });

  it("predicts tp2 with the measured waits at its collectives as tp communication, and says so", async () => {
    const { planFor } = await import("../helpers.js");
    const waits = { members: 2, ranks: 4, points: [{ segmentSeconds: 1e-4, waitSeconds: 5e-5 }, { segmentSeconds: 1e-3, waitSeconds: 2e-4 }] };
    const p: DeviceProfile = { ...profile, syncWaits: waits };
    const { model, plan } = planFor("tiny-gpt", profileShape(p, 2), { tp: 2, globalBatch: 8, flashAttention: false });
    const withWaits = predictOnProfile(model, p, 2, plan);
    const exact = predictOnProfile(model, profile, 2, plan);
    expect(exact.note).toBeUndefined();
    expect(withWaits.note).toMatch(/waits at tp collectives/);
    // 8 micro-batches x 28 collectives, each at least the 0.05 ms the line gives a segment of length 0.
    const added = withWaits.estimate.time.breakdown.tpCommSeconds - exact.estimate.time.breakdown.tpCommSeconds;
    expect(added).toBeGreaterThan(8 * 28 * 5e-5 * 0.99);
    expect(withWaits.estimate.time.stepSeconds - exact.estimate.time.stepSeconds).toBeCloseTo(added, 9);
    expect(withWaits.estimate.time.breakdown.bubbleSeconds).toBe(0);
  });

  it("predicts dp2 with the wait at its gradient reduction, after the drift of the whole step's passes, as dp communication", async () => {
    const { planFor } = await import("../helpers.js");
    const { planCosts } = await import("../../src/planner/cost/stages.js");
    // A hand-over of 0.05 ms (the line's intercept).
    const waits = { members: 2, ranks: 4, points: [{ segmentSeconds: 1e-4, waitSeconds: 5e-5 + 1e-5 }, { segmentSeconds: 1e-3, waitSeconds: 5e-5 + 1e-4 }] };
    const p: DeviceProfile = { ...profile, syncWaits: waits, passJitter: { shape: "test", samples: 320, forward, backward } };
    const sigma = spreadAt(forward, backward);
    for (const zero of [0, 1] as const) {
      const shape = profileShape(p, 2);
      const { model, plan } = planFor("tiny-gpt", shape, { dp: 2, zero, globalBatch: 8, flashAttention: false });
      const withWaits = predictOnProfile(model, p, 2, plan);
      const exact = predictOnProfile(model, profile, 2, plan);
      expect(withWaits.note).toMatch(/waits at dp collectives/);
      // The executor reduces once after the last backward (and ZeRO-1 gathers after the update): the reduction
      // waits after the drift of all of the step's passes, 4 forwards and 4 backwards; the gather after none.
      const s = planCosts(model, shape, plan).stages[0]!;
      const f = s.forwardSeconds;
      const bw = s.backwardInputSeconds + s.backwardWeightSeconds + s.recomputeSeconds;
      const sd = Math.sqrt(4 * ((sigma(f) * f) ** 2 + (sigma(bw) * bw) ** 2));
      const expected = 5e-5 + sd / Math.sqrt(Math.PI) + (zero === 1 ? 5e-5 : 0);
      const added = withWaits.estimate.time.breakdown.dpCommSeconds - exact.estimate.time.breakdown.dpCommSeconds;
      expect(added, `zero ${zero}`).toBeCloseTo(expected, 7);
      expect(withWaits.estimate.time.stepSeconds - exact.estimate.time.stepSeconds).toBeCloseTo(expected, 7);
    }
  });

  it("predicts a pipeline's step with it as the median of seeded simulated steps, and says so", async () => {
    const { planFor } = await import("../helpers.js");
    const p: DeviceProfile = { ...profile, passJitter: { shape: "test", samples: 320, forward, backward } };
    const { model, plan } = planFor("tiny-gpt", profileShape(p, 2), { pp: 2, globalBatch: 8, flashAttention: false });
    const jittered = predictOnProfile(model, p, 2, plan);
    const exact = predictOnProfile(model, profile, 2, plan);
    expect(exact.note).toBeUndefined();
    expect(jittered.note).toMatch(new RegExp(`pass-time jitter .* median of ${JITTER_SAMPLES} simulated steps`));
    expect(jittered.estimate.pipeline.bubbleFraction).toBeGreaterThan(exact.estimate.pipeline.bubbleFraction);
    expect(predictOnProfile(model, p, 2, plan).estimate).toEqual(jittered.estimate);
    expect(jittered.criticalStage).toBe(exact.criticalStage);
  });
});

function step(startMs: number, endMs: number, idleSeconds: number): StepRecord {
  return {
    loss: 0, seconds: (endMs - startMs) / 1e3, forwardPassSeconds: [], backwardPassSeconds: [], optimizerSeconds: 0,
    pipelineSpanSeconds: (endMs - startMs) / 1e3, pipelineIdleSeconds: idleSeconds, pipelineStartMs: startMs, pipelineEndMs: endMs,
    comm: {} as StepRecord["comm"], passComm: {} as StepRecord["comm"], commBytesByPurpose: {},
  };
}

describe("device profile: waits at collectives", () => {
  // Measured-like points: 0.05 ms of hand-over plus a quarter of the segment.
  const points = [0.0001, 0.0004, 0.001].map((l) => ({ segmentSeconds: l, waitSeconds: 5e-5 + 0.25 * l }));

  it("fits the line through the measured points; beyond the longest, the spread term grows as the square root of the segment", () => {
    const at = syncWaitAt(points, 2);
    expect(at(0.0002, 2)).toBeCloseTo(5e-5 + 0.25 * 0.0002, 12);
    expect(at(0.001, 2)).toBeCloseTo(3e-4, 12);
    // The hand-over stays 0.05 ms; the spread, 0.25 ms at 1 ms, doubles at 4 ms.
    expect(at(0.004, 2)).toBeCloseTo(5e-5 + 2 * 2.5e-4, 12);
    expect(at(0.0002, 1)).toBe(0);
  });

  it("keeps both terms non-negative: waits that fall with the segment give their mean, a negative intercept the line through zero", () => {
    const falling = [{ segmentSeconds: 0.0001, waitSeconds: 3e-4 }, { segmentSeconds: 0.001, waitSeconds: 1e-4 }];
    expect(syncWaitAt(falling, 2)(0.0005, 2)).toBeCloseTo(2e-4, 12);
    const steep = [{ segmentSeconds: 0.0005, waitSeconds: 1e-5 }, { segmentSeconds: 0.001, waitSeconds: 3e-4 }];
    const at = syncWaitAt(steep, 2);
    // Through zero: b = sum(L w) / sum(L^2) = (5e-9 + 3e-7) / (2.5e-7 + 1e-6) = 0.244.
    expect(at(0, 2)).toBe(0);
    expect(at(0.001, 2)).toBeCloseTo(0.244e-3, 12);
  });

  it("gives each group the line through its own points where it has two, else the line through all", () => {
    const tp = [0.0002, 0.0004].map((l) => ({ segmentSeconds: l, waitSeconds: 5e-5 + 0.1 * l, group: "tp" as const }));
    const cp = [0.0003, 0.0007].map((l) => ({ segmentSeconds: l, waitSeconds: 8e-5 + 0.2 * l, group: "cp" as const }));
    const at = syncWaitAt([...tp, ...cp], 2);
    expect(at(0.0003, 2, "tp")).toBeCloseTo(5e-5 + 0.1 * 0.0003, 12);
    expect(at(0.0005, 2, "cp")).toBeCloseTo(8e-5 + 0.2 * 0.0005, 12);
    // Expert-parallel all-to-alls: their own line where two points were measured at them, else every point's.
    const ep = [0.0007, 0.0024].map((l) => ({ segmentSeconds: l, waitSeconds: 2e-4 + 0.02 * l, group: "ep" as const }));
    expect(syncWaitAt([...tp, ...cp, ...ep], 2)(0.001, 2, "ep")).toBeCloseTo(2e-4 + 0.02 * 0.001, 12);
    expect(syncWaitAt([...tp, ...cp], 2)(0.0003, 2, "ep")).toBeCloseTo(syncWaitAt([...tp, ...cp], 2)(0.0003, 2), 12);
    // One cp point only: cp collectives take the line through every point, as a group-less caller does.
    const oneCp = syncWaitAt([...tp, cp[0]!], 2);
    expect(oneCp(0.0003, 2, "cp")).toBeCloseTo(oneCp(0.0003, 2), 12);
    expect(oneCp(0.0003, 2, "tp")).toBeCloseTo(5e-5 + 0.1 * 0.0003, 12);
    // Data-parallel hand-over: the tp line's intercept, not one pulled up by the cp ranks' longer waits.
    expect(dataParallelWaitAt([...tp, ...cp])(0, 2)).toBeCloseTo(5e-5, 12);
  });

  it("charges a cp plan's collectives the cp line and a tp plan's the tp line, through the simulator", async () => {
    const { planFor } = await import("../helpers.js");
    const tp = [0.0002, 0.0004].map((l) => ({ segmentSeconds: l, waitSeconds: 5e-5 + 0.1 * l, group: "tp" as const }));
    const cpLike = (extra: number) => [0.0003, 0.0007].map((l) => ({ segmentSeconds: l, waitSeconds: extra + 5e-5 + 0.1 * l, group: "cp" as const }));
    const at = (extra: number, split: Record<string, number>) => {
      const p: DeviceProfile = { ...profile, syncWaits: { members: 2, ranks: 2, points: [...tp, ...cpLike(extra)] } };
      const { model, plan } = planFor("tiny-gpt", profileShape(p, 2), { globalBatch: 8, flashAttention: false, ...split });
      return predictOnProfile(model, p, 2, plan).estimate.time;
    };
    const calls = 8 * 12; // tiny-gpt cp2: 4 cp collectives forward and 8 backward per micro-batch, 8 micro-batches
    expect(at(1e-4, { cp: 2 }).breakdown.cpCommSeconds - at(0, { cp: 2 }).breakdown.cpCommSeconds).toBeCloseTo(calls * 1e-4, 9);
    expect(at(1e-4, { tp: 2 }).stepSeconds).toBe(at(0, { tp: 2 }).stepSeconds);
  });

  it("scales the spread term with the mean of the slowest of the group's members", () => {
    const at = syncWaitAt(points, 2);
    expect(at(0.0004, 4) - 5e-5).toBeCloseTo(0.25 * 0.0004 * (1.0294 / 0.5642), 7);
    expect(syncWaitAt([], 2)(0.001, 2)).toBe(0);
    expect(syncWaitAt([{ segmentSeconds: 0, waitSeconds: 1e-4 }], 2)(0.001, 2)).toBe(0);
  });
});

describe("measured bubble: the stage's idle share of the whole pipelined window, as the simulator counts it", () => {
  it("counts the fill before a stage's first pass and the drain after its last, besides its waits", () => {
    // Stage 0 works 0..90 ms without waiting and idles 10 ms waiting for gradients; stage 1 starts at 10
    // (its span starts when it first waits) and ends at 100.
    const ranks = [{ steps: [step(0, 90, 0.01)] }, { steps: [step(5, 100, 0.005)] }] as unknown as RankResult[];
    const [w] = pipelineWindows(ranks);
    expect(w).toEqual({ startMs: 0, endMs: 100 });
    // Stage 0: busy 80 ms of a 100 ms window (its 10 ms drain after 90 and 10 ms of waits).
    expect(bubbleOf(ranks[0]!.steps[0]!, w!)).toBeCloseTo(0.2, 12);
    // Stage 1: busy 90 ms (95 ms span less 5 ms of waits): fill 5 + waits 5.
    expect(bubbleOf(ranks[1]!.steps[0]!, w!)).toBeCloseTo(0.1, 12);
  });

  it("counts other processes' share of the cores during a run, and says when it was more than a tenth", async () => {
    const { otherWorkShare, cpuSnapshot } = await import("../../src/executor/measure/machine.js");
    const at = (machineBusyMs: number, machineTotalMs: number, processMs: number) => ({ machineBusyMs, machineTotalMs, processMs });
    // 2 cores for 3 s: 6000 ms in all; the machine busy 5000 ms, this process 3800: others 1200 ms, 20%.
    expect(otherWorkShare(at(100, 1000, 50), at(5100, 7000, 3850))).toBeCloseTo(0.2, 12);
    // The process's own time may exceed the machine's busy time by the counters' granularity: 0, not negative.
    expect(otherWorkShare(at(0, 0, 0), at(5000, 6000, 5100))).toBe(0);
    expect(otherWorkShare(at(0, 10, 0), at(0, 10, 0))).toBeUndefined();
    const now = cpuSnapshot();
    expect(now.machineTotalMs).toBeGreaterThanOrEqual(now.machineBusyMs);
    expect(now.processMs).toBeGreaterThan(0);

    const { execute } = await import("../../src/executor/execute.js");
    const { buildReport, OTHER_WORK_NOTED } = await import("../../src/executor/measure/report.js");
    const { planFor } = await import("../helpers.js");
    const { model, plan } = planFor("tiny-gpt", profileShape(profile, 2), { dp: 2, globalBatch: 4, flashAttention: false });
    const ex = await execute({ model, plan, steps: 1, warmupSteps: 0, backend: "wasm", reference: false });
    const notes = (other: number | undefined) => buildReport(ex, predictOnProfile(model, profile, 2, plan), 2, other).notes.join("\n");
    expect(notes(0.35)).toMatch(/other processes kept 35% of the 2 cores busy during the run/);
    expect(notes(OTHER_WORK_NOTED)).not.toMatch(/other processes/);
    expect(notes(undefined)).not.toMatch(/other processes/);
    // One timed step: no interval for its median, and one stage: no bubble to give one for.
    const report = buildReport(ex, predictOnProfile(model, profile, 2, plan), 2);
    expect(report.measured.stepSecondsInterval).toBeUndefined();
    expect(report.measured.bubbleFractionInterval).toBeUndefined();
  });

  it("compares the run's bottleneck (the stage busiest outside its waits), and says so when another stage was predicted", async () => {
    const { execute } = await import("../../src/executor/execute.js");
    const { buildReport } = await import("../../src/executor/measure/report.js");
    const { planFor } = await import("../helpers.js");
    const { model, plan } = planFor("tiny-gpt", profileShape(profile, 2), { pp: 2, globalBatch: 4, flashAttention: false });
    const ex = await execute({ model, plan, steps: 4, warmupSteps: 0, backend: "wasm", reference: false });
    const prediction = (criticalStage: number) => ({ ...predictOnProfile(model, profile, 2, plan), criticalStage });
    const ranks = buildReport(ex, prediction(0), 2).measured.ranks;
    // Busy outside its waits, over the step's pipelined window that every rank's bubble is a share of.
    const work = (r: (typeof ranks)[number]) => 1 - r.bubbleFraction;
    const busiest = work(ranks[0]!) >= work(ranks[1]!) ? ranks[0]! : ranks[1]!;
    const other = ranks.find((r) => r !== busiest)!;
    const agreed = buildReport(ex, prediction(busiest.stage), 2);
    expect(agreed.measured.bubbleFraction).toBe(busiest.bubbleFraction);
    expect(agreed.notes.join("\n")).not.toMatch(/was the busiest/);
    const differed = buildReport(ex, prediction(other.stage), 2);
    expect(differed.measured.bubbleFraction).toBe(busiest.bubbleFraction);
    expect(differed.notes.join("\n")).toMatch(new RegExp(`stage ${busiest.stage} was the busiest in the run, where stage ${other.stage} was predicted to be: .* idled ${(100 * other.bubbleFraction).toFixed(1)}%`));
    // The bubble's interval is the busiest rank's, over its timed steps (the first left out): with three,
    // their whole range, which holds the median with probability 1 - 2 / 8.
    const { bubbleOf, pipelineWindows } = await import("../../src/executor/measure/report.js");
    const windows = pipelineWindows(ex.results);
    const bubbles = ex.results[busiest.rank]!.steps.map((s, i) => bubbleOf(s, windows[i]!)).slice(1);
    expect(bubbles).toHaveLength(3);
    expect(agreed.measured.bubbleFractionInterval).toEqual({ low: Math.min(...bubbles), high: Math.max(...bubbles), confidence: 0.75 });
  });
});

describe("device profile: the optimizer streams at its own measured rate", () => {
  it("prices Adam at optimizerBytesPerSecond (30 bytes per parameter) and element-wise work at the fitted rate", async () => {
    const { planCosts } = await import("../../src/planner/cost/stages.js");
    const { planFor } = await import("../helpers.js");
    const withOptimizer: DeviceProfile = { ...profile, optimizerBytesPerSecond: 4e9 };
    const shape = profileShape(withOptimizer, 1);
    expect(shape.spec.gpu.hbmBytesPerSecond).toBe(4e9);
    expect(shape.spec.gpu.hbmBytesPerSecond * shape.spec.gpu.efficiency.memoryBandwidth).toBeCloseTo(1e9, 3);
    const { model, plan } = planFor("tiny-gpt", shape, { globalBatch: 2 });
    const stage = planCosts(model, shape, plan).stages[0]!;
    expect(stage.optimizerSeconds).toBeCloseTo((stage.params * 30) / 4e9, 12);
    // An older profile without the measurement: the optimizer at the element-wise rate, as before.
    const old = profileShape(profile, 1);
    expect(planCosts(model, old, plan).stages[0]!.optimizerSeconds).toBeCloseTo((stage.params * 30) / 1e9, 12);
  });
});

describe("device profile: the cross-entropy at its own measured cost", () => {
  it("prices the loss with the profile's fixed time per pass and rate (14 bytes per logit each way), slowed like the rest", async () => {
    const { headTimes, LOSS_BYTES_PER_LOGIT } = await import("../../src/planner/cost/compute.js");
    const { planFor } = await import("../helpers.js");
    const withLoss: DeviceProfile = { ...profile, loss: { overheadSeconds: 2e-4, bytesPerSecond: 3e9 } };
    const lossOf = (p: DeviceProfile, ranks: number) => {
      const shape = profileShape(p, ranks);
      const { model, plan } = planFor("tiny-gpt", shape, { globalBatch: 16, microBatch: 4 });
      const head = headTimes(model, shape.spec.gpu, plan);
      return { seconds: head.forwardSeconds - head.projectionSeconds, logits: plan.microBatch * plan.seqLen * model.vocabSize };
    };
    const one = lossOf(withLoss, 1);
    expect(LOSS_BYTES_PER_LOGIT).toBe(14);
    expect(one.seconds).toBeCloseTo(2e-4 + (14 * one.logits) / 3e9, 12);
    // Four ranks at once: the fixed time 1.6x longer and the rate 1.6x slower, as every other constant.
    expect(lossOf(withLoss, 4).seconds).toBeCloseTo(1.6 * one.seconds, 12);
    // An older profile without the measurement: no fixed time, the layers' element-wise rate, as before.
    const old = lossOf(profile, 1);
    expect(old.seconds).toBeCloseTo((14 * old.logits) / 1e9, 12);
  });

  it("takes the fixed time and the rate from the line through the two timed sizes", async () => {
    const { passCostFrom: lossCostFrom } = await import("../../src/executor/measure/stats.js");
    // 0.3 ms fixed (0.15 per pass) and 2 GB/s: exactly on the line.
    const line = lossCostFrom([1e5, 8e5], [3e-4 + 1e5 / 2e9, 3e-4 + 8e5 / 2e9]);
    expect(line.overheadSeconds).toBeCloseTo(1.5e-4, 12);
    expect(line.bytesPerSecond).toBeCloseTo(2e9, 0);
    // Noise that puts the intercept below zero, or makes the larger size no slower: the larger size's time is all streaming.
    for (const [seconds, rate] of [[[1e-5, 8e-4], 8e5 / 8e-4], [[5e-4, 4e-4], 8e5 / 4e-4]] as const) {
      const c = lossCostFrom([1e5, 8e5], seconds);
      expect(c.overheadSeconds).toBe(0);
      expect(c.bytesPerSecond / rate).toBeCloseTo(1, 12);
    }
  });
});

describe("device profile: the input embedding at its own measured cost", () => {
  it("prices its passes with the profile's fixed time per pass and rate in the cost model's bytes, slowed like the rest", async () => {
    const { embeddingBytes, embeddingTimes } = await import("../../src/planner/cost/compute.js");
    const { planFor } = await import("../helpers.js");
    const withEmbedding: DeviceProfile = { ...profile, embedding: { overheadSeconds: 3e-5, bytesPerSecond: 2e9, measured: [{ shape: "h64 s32 L2", bytes: 2e5, seconds: 1.6e-4 }] } };
    const timesOf = (p: DeviceProfile, ranks: number) => {
      const shape = profileShape(p, ranks);
      const { model, plan } = planFor("tiny-gpt", shape, { globalBatch: 16, microBatch: 4 });
      return { times: embeddingTimes(model, shape.spec.gpu, plan), bytes: embeddingBytes(model, plan) };
    };
    const one = timesOf(withEmbedding, 1);
    // tiny-gpt's learned positions: the lookup's rows and the position add forward; the tables' gradients backward.
    const rows = 4 * 32 * 64 * 2;
    expect(one.bytes.forwardBytes).toBe(5 * rows);
    expect(one.bytes.backwardBytes).toBe(rows + 256 * 64 * (2 + 2 + 8) + rows + 32 * 64 * (2 + 2 + 8));
    expect(one.times.forwardSeconds).toBeCloseTo(3e-5 + one.bytes.forwardBytes / 2e9, 12);
    expect(one.times.backwardSeconds).toBeCloseTo(3e-5 + one.bytes.backwardBytes / 2e9, 12);
    // Four ranks at once: 1.6x, as every other constant.
    expect(timesOf(withEmbedding, 4).times.backwardSeconds).toBeCloseTo(1.6 * one.times.backwardSeconds, 12);
    // An older profile without the measurement: no fixed time, the layers' element-wise rate, as before.
    const old = timesOf(profile, 1);
    expect(old.times.backwardSeconds).toBeCloseTo(old.bytes.backwardBytes / 1e9, 12);
  });

  it("fits the line through the timed sizes in whatever order they come, its larger size's time all streaming where noise bends it", async () => {
    const { passCostFrom } = await import("../../src/executor/measure/stats.js");
    const bytes = [2e5, 5e4, 4e5, 3e5];
    const line = passCostFrom(bytes, bytes.map((b) => 1e-4 + b / 4e9));
    expect(line.overheadSeconds).toBeCloseTo(5e-5, 12);
    expect(line.bytesPerSecond / 4e9).toBeCloseTo(1, 9);
    // The largest by bytes (4e5, third here), not the last given, carries the rate when the line falls.
    const bent = passCostFrom(bytes, [3e-4, 4e-4, 2e-4, 2.5e-4]);
    expect(bent.overheadSeconds).toBe(0);
    expect(bent.bytesPerSecond).toBeCloseTo(4e5 / 2e-4, 3);
  });
});

describe("what the executor can hold", () => {
  it("refuses a model whose one-rank reference would not fit in half this machine, naming the field and the limit", async () => {
    const { validateForExecutor } = await import("../../src/executor/validate.js");
    const { planFor, shapeOf } = await import("../helpers.js");
    const { InputError } = await import("../../src/spec/errors.js");
    const shape = shapeOf("dgx-h100", 8);
    const big = planFor("llama3-70b", shape, { tp: 8, globalBatch: 8, recompute: "none", flashAttention: false });
    let error: unknown;
    try {
      validateForExecutor(big.model, big.plan, 24 * 2 ** 30);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/^model = "llama3-70b \(\d+ M parameters\)" is not valid .*at most 537 M parameters on this machine \(24 GiB\)/);
    const tiny = planFor("tiny-gpt", shapeOf("dgx-h100", 2), { dp: 2, globalBatch: 8, recompute: "none", flashAttention: false });
    expect(() => validateForExecutor(tiny.model, tiny.plan, 24 * 2 ** 30)).not.toThrow();
  });
});

describe("warm-up steps", () => {
  it("train and are reported, but the step time and the ranks' medians leave them out", async () => {
    const { execute } = await import("../../src/executor/execute.js");
    const { buildReport } = await import("../../src/executor/measure/report.js");
    const { loadModel } = await import("../../src/cli/catalog.js");
    const { resolvePlan } = await import("../../src/spec/plan.js");
    const { estimate } = await import("../../src/planner/cost/estimate.js");
    const { upperMedian } = await import("../../src/executor/measure/stats.js");
    const { shapeOf } = await import("../helpers.js");
    const model = loadModel("tiny-gpt");
    const shape = shapeOf("dgx-h100", 2);
    const plan = resolvePlan(model, shape, { dp: 2, globalBatch: 4, flashAttention: false });
    const ex = await execute({ model, plan, steps: 3, warmupSteps: 2, reference: false });
    expect(ex.warmupSteps).toBe(2);
    expect(ex.losses).toHaveLength(5);
    for (const r of ex.results) expect(r.steps).toHaveLength(5);
    const report = buildReport(ex, { shape, estimate: estimate(model, shape, plan) }, 2);
    // The slowest rank's step, median over the three timed steps (indices 2 to 4) only.
    const slowest = [2, 3, 4].map((i) => Math.max(...ex.results.map((r) => r.steps[i]!.seconds)));
    expect(report.measured.stepSeconds).toBe(upperMedian(slowest));
    for (const r of report.measured.ranks) expect(r.stepSeconds).toBe(upperMedian(ex.results[r.rank]!.steps.slice(2).map((s) => s.seconds)));
    expect(report.measured.warmupSteps).toBe(2);
    // Three timed steps: the interval of their median is their whole range (1 - 2 / 8 = 0.75), no bubble's.
    expect(report.measured.stepSecondsInterval).toEqual({ low: Math.min(...slowest), high: Math.max(...slowest), confidence: 0.75 });
    expect(report.measured.bubbleFractionInterval).toBeUndefined();
  }, 60_000);
});
