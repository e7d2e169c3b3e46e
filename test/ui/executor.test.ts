import { describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import type { ProfileOnDisk } from "../../src/cli/profile-file.js";
import type { DeviceProfile } from "../../src/executor/measure/profile.js";
import { InputError } from "../../src/spec/errors.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { chooseProfile, sessionExecutor, tooLargeToExecute, type StartRun } from "../../src/ui/executor.js";
import { runJob, SESSION_PROFILE, type RunDeps, type RunJob, type RunMessage } from "../../src/ui/run-job.js";

/** The explorer's seam to the executor (x): profile choice as meshplan execute makes it, the session's profile, stopping a run. */
const big = loadFlags({ model: "llama3-70b", gpus: 64 }).context;
const model = big.model;
const shape = big.shape;

describe("the executor seam", () => {
  const tiny = loadFlags({ model: "tiny-gpt", gpus: 4 }).context;
  const plan = resolvePlan(tiny.model, tiny.shape, { dp: 4 });
  const profile = (n: number) => ({ version: 1, n, backend: "wasm" }) as unknown as DeviceProfile;
  const never = new AbortController().signal;
  it("refuses models too large to run here", async () => {
    expect(tooLargeToExecute(model, resolvePlan(model, shape, { tp: 8, pp: 8 }))).toMatch(/70\.6 B parameters/);
    expect(tooLargeToExecute(tiny.model, plan)).toBeUndefined();
    const run = sessionExecutor({ start: () => ({ stop: () => {} }), disk: () => ({ kind: "missing", file: "p.json" }) });
    await expect(run(model, shape, resolvePlan(model, shape, { tp: 8 }), () => {}, never)).rejects.toMatchObject({ code: "too-large" });
  });
  it("runs a job: says the executor is not available when it exports nothing usable, and passes its table through", async () => {
    const run = async (load: RunDeps["load"], job: RunJob = { model: tiny.model, shape: tiny.shape, plan, saved: { profile: profile(1), file: "p.json" } }) => {
      const messages: RunMessage[] = [];
      await runJob(job, (m) => messages.push(m), { load, calibrate: async () => profile(2) });
      return messages;
    };
    expect(await run(async () => undefined)).toEqual([{ type: "failed", code: "unavailable", message: expect.stringContaining("executor not available yet") }]);
    const table = { title: "t", rows: [] };
    expect(await run(async () => ({ executePlan: async () => table }))).toEqual([{ type: "done", table }]);
    const failing = async () => ({ executePlan: async () => Promise.reject(new Error("rank 2 died")) });
    expect(await run(failing)).toEqual([{ type: "failed", code: "failed", message: "execution failed: rank 2 died" }]);
    // without a profile it calibrates first, says why, and hands the executor (and the session) what it measured
    const seen: unknown[] = [];
    const executor = async () => ({ executePlan: async (_m: unknown, _s: unknown, _p: unknown, o: { saved?: unknown }) => (seen.push(o.saved), table) });
    const calibrated = await run(executor, { model: tiny.model, shape: tiny.shape, plan, calibrateBecause: "no device profile (p.json)" });
    expect(calibrated[0]).toMatchObject({ type: "progress", label: expect.stringMatching(/^no device profile \(p\.json\); calibrating this machine first/) });
    expect(calibrated.slice(-2)).toEqual([{ type: "profile", profile: profile(2) }, { type: "done", table }]);
    expect(seen).toEqual([{ profile: profile(2), file: SESSION_PROFILE }]);
  });
  it("chooses the profile as meshplan execute does: the saved one for this machine, else calibrate, an unreadable one refused", () => {
    const usable: ProfileOnDisk = { kind: "usable", profile: profile(1), file: "meshplan-profile.json" };
    expect(chooseProfile(usable, profile(2))).toEqual({ kind: "use", saved: { profile: profile(1), file: "meshplan-profile.json" } });
    expect(chooseProfile({ kind: "missing", file: "meshplan-profile.json" }, undefined)).toEqual({ kind: "calibrate", because: "no device profile (meshplan-profile.json)" });
    expect(chooseProfile({ kind: "other-machine", file: "f.json", why: "another CPU" }, undefined)).toEqual({ kind: "calibrate", because: "f.json does not describe this machine (another CPU)" });
    expect(chooseProfile({ kind: "missing", file: "f.json" }, profile(2))).toEqual({ kind: "use", saved: { profile: profile(2), file: SESSION_PROFILE } });
    const error = new InputError({ code: "bad-json", field: "--profile", value: "f.json", valid: "a profile" });
    expect(chooseProfile({ kind: "unreadable", file: "f.json", error }, profile(2))).toEqual({ kind: "refuse", error });
  });
  it("calibrates once a session: the profile a run measured serves the next runs", async () => {
    const jobs: RunJob[] = [];
    const start: StartRun = (job, onMessage) => {
      jobs.push(job);
      setImmediate(() => {
        if (job.saved === undefined) onMessage({ type: "profile", profile: profile(7) });
        onMessage({ type: "done", table: { title: "t", rows: [] } });
      });
      return { stop: () => {} };
    };
    const run = sessionExecutor({ start, disk: () => ({ kind: "missing", file: "meshplan-profile.json" }) });
    await run(tiny.model, tiny.shape, plan, () => {}, never);
    await run(tiny.model, tiny.shape, plan, () => {}, never);
    expect(jobs.map((j) => [j.calibrateBecause, j.saved])).toEqual([
      ["no device profile (meshplan-profile.json)", undefined],
      [undefined, { profile: profile(7), file: SESSION_PROFILE }],
    ]);
  });
  it("stops a run when its signal aborts: the work is stopped and the promise says so", async () => {
    let stopped = 0;
    const progress: string[] = [];
    const start: StartRun = (_job, onMessage) => {
      setImmediate(() => onMessage({ type: "progress", fraction: 0.1, label: "step 1" }));
      return { stop: () => stopped++ };
    };
    const controller = new AbortController();
    const run = sessionExecutor({ start, disk: () => ({ kind: "missing", file: "p.json" }) })(tiny.model, tiny.shape, plan, (_f, l) => progress.push(l), controller.signal);
    await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await expect(run).rejects.toMatchObject({ code: "stopped" });
    expect(stopped).toBe(1);
    expect(progress).toEqual(["step 1"]);
  });
});
