import { describe, expect, it } from "vitest";
import { execute, type Execution } from "../../src/executor/execute.js";
import { fitShapes } from "../../src/executor/measure/calibrate.js";
import { atRunSpeed, concurrencySlowdown, predictForRun, predictOnProfile, profileShape, runSpeedProbe, type DeviceProfile } from "../../src/executor/measure/profile.js";
import { buildReport, runProbe } from "../../src/executor/measure/report.js";
import type { RankResult, StepRecord } from "../../src/executor/run/job.js";
import { loadModel } from "../../src/cli/catalog.js";
import type { Plan } from "../../src/spec/types.js";
import { planFor } from "../helpers.js";

const tiny = loadModel("tiny-gpt");
const probe = fitShapes(tiny)[0]!;

const profile: DeviceProfile = {
  version: 1, measuredAt: "2026-11-22T00:00:00Z", machine: { cpus: 2, cpuModel: "test", node: "v20", platform: "linux" }, backend: "wasm",
  matmul: [{ n: 64, seconds: 1e-4, flopsPerSecond: 5e9 }], peakFlopsPerSecond: 5e9, opOverheadSeconds: 4e-5, elementwiseBytesPerSecond: 4e8,
  memcpyBytesPerSecond: 8e9, collectiveBytesPerSecond: 3e9, collectiveLatencySeconds: 5e-6, fit: [],
  concurrency: { ranks: 2, aloneSeconds: 0.05, concurrentSeconds: 0.06, fittedSeconds: 0.048, slowdown: 0.06 / 0.048, probe: { shape: probe.shape, model: probe.model, plan: probe.plan } },
};

const dp2 = (globalBatch: number): Plan => planFor(tiny, profileShape(profile, 2), { dp: 2, globalBatch, flashAttention: false }).plan;

function record(probeSeconds?: number): StepRecord {
  return {
    loss: 1, seconds: 0.03, forwardPassSeconds: [0.01], backwardPassSeconds: [0.02], optimizerSeconds: 0, pipelineSpanSeconds: 0.03, pipelineIdleSeconds: 0,
    pipelineStartMs: 0, pipelineEndMs: 30, comm: {} as StepRecord["comm"], passComm: {} as StepRecord["comm"], commBytesByPurpose: {}, ...(probeSeconds === undefined ? {} : { probeSeconds }),
  };
}

function run(plan: Plan, probes: (readonly (number | undefined)[])[], warmupSteps: number): Execution {
  const results = probes.map((steps, rank) => ({ rank, steps: steps.map(record) })) as unknown as RankResult[];
  return { model: tiny, plan, warmupSteps, backend: "wasm", workers: results.length, results, losses: [], weights: new Map(), numerics: undefined } as unknown as Execution;
}

describe("speed probe: the machine's speed during a run", () => {
  it("sets the slowdown for the probing ranks to the run's probe step over the fitted one-rank step", () => {
    const fast = atRunSpeed(profile, 2, 0.072)!;
    expect(fast.concurrency!.slowdown).toBeCloseTo(1.5, 12);
    expect(concurrencySlowdown(fast, 2)).toBeCloseTo(1.5, 12);
    // One rank alone: the probe measured one at once, so its ratio applies to one rank too.
    expect(concurrencySlowdown(atRunSpeed(profile, 1, 0.024)!, 1)).toBeCloseTo(0.5, 12);
    // The calibrated profile keeps its own figures, exactly at its rank count.
    expect(concurrencySlowdown(profile, 2)).toBeCloseTo(1.25, 12);
    expect(concurrencySlowdown(profile, 1)).toBe(1);
    // Nothing to compare with: no fitted probe step, or no measurement.
    const { fittedSeconds: _, ...old } = profile.concurrency!;
    expect(atRunSpeed({ ...profile, concurrency: old }, 2, 0.07)).toBeUndefined();
    expect(atRunSpeed(profile, 2, 0)).toBeUndefined();
  });

  it("is run only where the profile names its step and the ranks have a core each", () => {
    expect(runSpeedProbe(profile, 2, 2)).toEqual({ model: probe.model, plan: probe.plan });
    expect(runSpeedProbe(profile, 3, 2)).toBeUndefined();
    const { probe: _, ...unnamed } = profile.concurrency!;
    expect(runSpeedProbe({ ...profile, concurrency: unnamed }, 2, 2)).toBeUndefined();
  });

  it("takes each rank's median over the timed steps, then the upper median over the ranks", () => {
    const plan = dp2(8);
    // Two warm-up steps (their probes, 0.5 s, left out), then three timed ones.
    const ex = run(plan, [[0.5, 0.5, 0.07, 0.06, 0.08], [0.5, 0.5, 0.09, 0.1, 0.2]], 2);
    expect(runProbe(ex)!.seconds).toBeCloseTo(0.1, 12);
    expect(runProbe(ex)!.ranks).toBe(2);
    expect(runProbe(run(plan, [[undefined, undefined]], 1))).toBeUndefined();
  });

  it("predicts at the run's speed and reports both speeds and the step at calibration's", () => {
    const plan = dp2(8);
    const ex = run(plan, [[0.072, 0.072, 0.072], [0.072, 0.072, 0.072]], 1);
    const p = predictForRun(tiny, profile, ex);
    const calibrated = predictOnProfile(tiny, profile, 2, plan);
    expect(p.estimate).toEqual(predictOnProfile(tiny, atRunSpeed(profile, 2, 0.072)!, 2, plan).estimate);
    // 1.5 / 1.25 slower than at calibration: every compute rate slowed, so the step is predicted longer.
    expect(p.estimate.time.stepSeconds).toBeGreaterThan(1.1 * calibrated.estimate.time.stepSeconds);
    expect(p.speed).toEqual({ probe: "h64 s32 L2, 8 micro-batches, 2 at once", calibrationSeconds: 0.06, runSeconds: 0.072, stepSecondsAtCalibration: calibrated.estimate.time.stepSeconds });
    // A profile of the first day, whose probe names no fit shape: the label is made from its model.
    const { shape: _, ...unnamed } = profile.concurrency!.probe!;
    const early: DeviceProfile = { ...profile, concurrency: { ...profile.concurrency!, probe: unnamed } };
    expect(predictForRun(tiny, early, ex).speed!.probe).toBe("h64 s32 L2, 8 micro-batches, 2 at once");
    // Without probe steps the prediction is the calibrated one, with no speed figures.
    const none = predictForRun(tiny, profile, run(plan, [[undefined, undefined], [undefined, undefined]], 1));
    expect(none.estimate).toEqual(calibrated.estimate);
    expect(none.speed).toBeUndefined();
  });

  it("runs beside a real execution without touching its losses, bytes or memory", async () => {
    const plan = dp2(4);
    const base = { model: tiny, plan, steps: 2, warmupSteps: 1, backend: "wasm" as const, reference: false };
    const plain = await execute(base);
    const probed = await execute({ ...base, speedProbe: { model: probe.model, plan: probe.plan } });
    for (const r of probed.results) {
      expect(r.steps).toHaveLength(3);
      for (const s of r.steps) expect(s.probeSeconds).toBeGreaterThan(0);
    }
    for (const r of plain.results) for (const s of r.steps) expect(s.probeSeconds).toBeUndefined();
    expect(probed.losses).toEqual(plain.losses);
    expect(probed.results.map((r) => r.memory)).toEqual(plain.results.map((r) => r.memory));
    expect(probed.results.map((r) => r.steps.map((s) => s.commBytesByPurpose))).toEqual(plain.results.map((r) => r.steps.map((s) => s.commBytesByPurpose)));
  });

  it("says when the probe compares two backends: on a profile calibrated on another than the run's", async () => {
    const plan = dp2(4);
    // Given the probe, every rank times it each step (on any core count, unlike execute, which runs it only
    // where the ranks have a core each): the report's speed note is always there to read.
    const ex = await execute({ model: tiny, plan, steps: 1, warmupSteps: 0, backend: "wasm", reference: false, speedProbe: { model: probe.model, plan: probe.plan } });
    // At calibration, 2 ranks at once: the fitted 48 ms step times the slowdown of 1.25.
    const ratio = `x${(runProbe(ex)!.seconds / (0.048 * 1.25)).toFixed(2)}`.replace(".", "\\.");
    const notes = (backend: string) => buildReport(ex, predictForRun(tiny, { ...profile, backend }, ex), 2).notes;
    const other = notes("cpu");
    expect(other[0]).toBe("the profile was calibrated on the cpu backend and this run's ranks ran on wasm: the prediction uses the cpu backend's rates (meshplan calibrate --backend wasm measures this one)");
    expect(other).toContainEqual(expect.stringMatching(new RegExp(`^predicted at the machine's speed during the run: the speed probe \\(.*, 2 at once\\) took .* on wasm against 60\\.0 ms at calibration on cpu \\(${ratio}, the two backends' difference more than the machine's speed\\)`)));
    // On the run's own backend: the machine's speed alone, and no word of backends.
    const same = notes("wasm");
    expect(same).toContainEqual(expect.stringMatching(new RegExp(`^predicted at the machine's speed during the run: the speed probe \\(.*, 2 at once\\) took .* against 60\\.0 ms at calibration \\(${ratio}\\);`)));
    expect(same.join("\n")).not.toMatch(/backend/);
  });

  it("keeps synchronous parameter servers in step: they pass the probe's barrier too", async () => {
    const plan = planFor(tiny, profileShape(profile, 2), { dp: 2, parameterServers: 1, globalBatch: 4, flashAttention: false }).plan;
    const ex = await execute({ model: tiny, plan, steps: 2, warmupSteps: 0, backend: "wasm", reference: false, timeoutSeconds: 20, speedProbe: { model: probe.model, plan: probe.plan } });
    const workers = ex.results.filter((r) => r.steps.length > 0);
    expect(workers).toHaveLength(2);
    for (const r of workers) for (const s of r.steps) expect(s.probeSeconds).toBeGreaterThan(0);
  });
});
