import { describe, expect, it } from "vitest";
import { COMM_KINDS } from "../../src/executor/comm/fabric.js";
import type { KindTotals } from "../../src/executor/comm/traffic.js";
import type { Execution } from "../../src/executor/execute.js";
import { passCalls } from "../../src/executor/measure/accounting.js";
import type { DeviceProfile } from "../../src/executor/measure/profile.js";
import { waitPoint, waitRunModel, waitRunPlan } from "../../src/executor/measure/waits.js";
import type { RankResult, StepRecord } from "../../src/executor/run/job.js";
import { loadModel } from "../../src/cli/catalog.js";

const profile: DeviceProfile = {
  version: 1, measuredAt: "2026-11-22T00:00:00Z", machine: { cpus: 2, cpuModel: "test", node: "v20", platform: "linux" }, backend: "wasm",
  matmul: [{ n: 64, seconds: 1e-4, flopsPerSecond: 5e9 }], peakFlopsPerSecond: 5e9, opOverheadSeconds: 1e-4, elementwiseBytesPerSecond: 1e9,
  memcpyBytesPerSecond: 8e9, collectiveBytesPerSecond: 3e9, collectiveLatencySeconds: 3e-6, fit: [],
};
const model = loadModel("tiny-gpt");

function traffic(kind: "tp" | "cp", calls: number, idleSeconds: number): Record<(typeof COMM_KINDS)[number], KindTotals> {
  const none = { bytes: 0, seconds: 0, idleSeconds: 0, calls: 0 };
  return Object.fromEntries(COMM_KINDS.map((k) => [k, k === kind ? { bytes: 4 * calls, seconds: 2 * idleSeconds, idleSeconds, calls } : none])) as Record<(typeof COMM_KINDS)[number], KindTotals>;
}

function step(kind: "tp" | "cp", forward: number[], backward: number[], passCallsMade: number, passIdle: number, laterIdle: number): StepRecord {
  return {
    loss: 1, seconds: 0.1, forwardPassSeconds: forward, backwardPassSeconds: backward, optimizerSeconds: 0,
    pipelineSpanSeconds: 0.1, pipelineIdleSeconds: 0, pipelineStartMs: 0, pipelineEndMs: 100, commBytesByPurpose: {},
    passComm: traffic(kind, passCallsMade, passIdle),
    // The once-per-step collective after the passes (SP's gradient sum) with a long wait: not a pass's.
    comm: traffic(kind, passCallsMade + 1, passIdle + laterIdle),
  };
}

describe("calibrate's waits at collectives (waits.ts)", () => {
  it("wait runs: the fit shape split in two over the axis, one pair per two cores, 8 micro-batches per pair", () => {
    const two = waitRunPlan(model, profile, "tp", 2);
    expect([two.dp, two.tp, two.cp, two.pp]).toEqual([1, 2, 1, 1]);
    expect(two.globalBatch).toBe(8);
    expect(two.sequenceParallel).toBe(true);
    const five = waitRunPlan(model, profile, "cp", 5);
    expect([five.dp, five.tp, five.cp]).toEqual([2, 1, 2]);
    expect(five.globalBatch).toBe(16);
    expect(five.flashAttention).toBe(false);
  });

  it("expert-parallel wait runs: the fit shape with tiny-moe's experts, two replicas per pair sharing theirs", () => {
    const moe = waitRunModel(model, "ep");
    expect(moe.moe).toEqual(loadModel("tiny-moe").moe);
    expect(waitRunModel(model, "tp")).toBe(model);
    const two = waitRunPlan(moe, profile, "ep", 2);
    expect([two.dp, two.ep, two.tp, two.cp, two.pp]).toEqual([2, 2, 1, 1, 1]);
    // 8 micro-batches per replica, as every wait run
    expect(two.globalBatch).toBe(16);
    const five = waitRunPlan(moe, profile, "ep", 5);
    expect([five.dp, five.ep]).toEqual([4, 2]);
    expect(five.globalBatch).toBe(32);
  });

  it("a point is the passes' time over their segments and the time blocked at their collectives over their count", () => {
    const plan = waitRunPlan(model, profile, "tp", 2);
    const calls = passCalls(model, plan, 0).tp;
    const micro = 8;
    const made = micro * (calls.forward + calls.backward);
    const forward = Array.from({ length: micro }, (_, i) => 0.001 + i * 1e-4);
    const backward = Array.from({ length: micro }, (_, i) => 0.002 + i * 1e-4);
    // Warm-up steps (and the first step) are slow and wait long: left out.
    const warm = step("tp", forward.map((x) => 10 * x), backward.map((x) => 10 * x), made, 1, 1);
    const timed = (idle: number) => step("tp", forward, backward, made, idle, 0.05);
    const result = (rank: number, idle: number): RankResult => ({
      rank, coords: { dp: 0, tp: rank, pp: 0, cp: 0 }, backend: "test", heapCollectives: false, holdsLoss: rank === 0,
      steps: [warm, warm, timed(idle), timed(idle)],
      memory: { peakTensorBytes: 0, peakActivationBytes: 0, states: { parametersBytes: 0, gradientsBytes: 0, optimizerBytes: 0 } },
      weights: [],
    });
    const ex = { model, plan, warmupSteps: 2, backend: "test", workers: 2, results: [result(0, 0.004), result(1, 0.002)], losses: [], weights: new Map(), numerics: undefined } as unknown as Execution;
    const p = waitPoint(ex, "tp");
    const passSeconds = forward.reduce((a, x) => a + x, 0) + backward.reduce((a, x) => a + x, 0);
    const segments = micro * (calls.forward + 1 + calls.backward + 1);
    expect(p.segmentSeconds).toBeCloseTo(passSeconds / segments, 15);
    expect(p.waitSeconds).toBeCloseTo((2 * 0.004 + 2 * 0.002) / (4 * made), 15);
    expect(() => waitPoint(ex, "cp")).toThrow(/no cp collective/);
  });
});
