import { builtFileExists } from "./built-file.js";
import type { SavedProfile } from "../cli/profile-file.js";
import type { ExecutePlanOptions, PredictedVsMeasured } from "../executor/index.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";

// The executor's own types (type-only: the executor still loads only for `x`, below).
export type { PredictedVsMeasured };
export type Progress = ExecutePlanOptions["onProgress"];

/**
 * One run of `x`: what crosses to the thread that runs it (plain data) and what comes back. The job runs
 * on its own worker thread (run-worker.ts) so that stopping it (Esc) ends it and every rank it started.
 */
export interface RunJob {
  readonly model: ModelSpec;
  readonly shape: ClusterShape;
  readonly plan: Plan;
  /** The profile to predict on: saved by `meshplan calibrate`, or measured earlier in this session. */
  readonly saved?: SavedProfile;
  /** No profile to use: calibrate this machine first, saying why (the line `meshplan execute` prints). */
  readonly calibrateBecause?: string;
}

export type RunMessage =
  | { readonly type: "progress"; readonly fraction: number; readonly label: string }
  | { readonly type: "profile"; readonly profile: DeviceProfile }
  | { readonly type: "done"; readonly table: PredictedVsMeasured }
  | { readonly type: "failed"; readonly code: "unavailable" | "failed"; readonly message: string };

/**
 * The executor's entry (`src/executor/index.ts`), as `x` calls it: it predicts on `options.saved`, which
 * runJob (below) finds or measures, the one place `x` calibrates, so that the session keeps the profile.
 */
export interface ExecutorModule {
  executePlan(model: ModelSpec, shape: ClusterShape, plan: Plan, options: ExecutePlanOptions): Promise<PredictedVsMeasured>;
}

const EXECUTOR_INDEX = new URL("../executor/index.js", import.meta.url);

/** Loads the executor's entry point where it exists and exports `executePlan`; undefined otherwise. */
export async function loadExecutor(): Promise<ExecutorModule | undefined> {
  if (!builtFileExists(EXECUTOR_INDEX)) return undefined;
  const mod = (await import(EXECUTOR_INDEX.href)) as Partial<ExecutorModule>;
  return typeof mod.executePlan === "function" ? (mod as ExecutorModule) : undefined;
}

/**
 * Measures this machine as `meshplan execute` does where it has no profile, on the wasm backend `x` runs
 * (cli/calibrate-machine.ts). Loaded lazily: the executor loads only for `x`.
 */
export async function calibrateHere(onProgress: (what: string) => void): Promise<DeviceProfile> {
  const { calibrateMachine } = await import("../cli/calibrate-machine.js");
  return calibrateMachine("wasm", onProgress);
}

/** Where a profile measured by `x` is said to come from (the executor's note: "predicted on the profile in ..."). */
export const SESSION_PROFILE = "memory, which x measured in this session (not saved: meshplan calibrate saves one)";

export interface RunDeps {
  readonly load: () => Promise<ExecutorModule | undefined>;
  readonly calibrate: (onProgress: (what: string) => void) => Promise<DeviceProfile>;
}

/**
 * Runs one job and reports every step through `post`: progress, the profile it measured (kept by the
 * session for the next run), then the table or why there is none. Never throws.
 */
export async function runJob(job: RunJob, post: (m: RunMessage) => void, deps: RunDeps = { load: loadExecutor, calibrate: calibrateHere }): Promise<void> {
  try {
    const executor = await deps.load();
    if (executor === undefined) {
      post({ type: "failed", code: "unavailable", message: "executor not available yet: src/executor/index.ts does not export executePlan" });
      return;
    }
    let saved = job.saved;
    if (saved === undefined) {
      const why = job.calibrateBecause ?? "no device profile";
      const say = (what: string) => post({ type: "progress", fraction: 0, label: `${why}; calibrating this machine first (about a minute; once a session): ${what}` });
      say("starting");
      const profile = await deps.calibrate(say);
      post({ type: "profile", profile });
      saved = { profile, file: SESSION_PROFILE };
    }
    const table = await executor.executePlan(job.model, job.shape, job.plan, {
      onProgress: (fraction, label) => post({ type: "progress", fraction, label }),
      saved,
    });
    post({ type: "done", table });
  } catch (e) {
    post({ type: "failed", code: "failed", message: `execution failed: ${e instanceof Error ? e.message : String(e)}` });
  }
}
