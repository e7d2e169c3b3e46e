import { builtFileExists } from "./built-file.js";
import { Worker } from "node:worker_threads";
import { totalParams } from "../planner/cost/params.js";
import { chooseSavedProfile, DEFAULT_PROFILE_FILE, profileOnDisk, type ProfileChoice, type ProfileOnDisk } from "../cli/profile-file.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import { runJob, SESSION_PROFILE, type PredictedVsMeasured, type Progress, type RunJob, type RunMessage } from "./run-job.js";

export type { PredictedVsMeasured, Progress } from "./run-job.js";

/**
 * The explorer's one seam to the executor (`x`). A run is a job (run-job.ts) on a worker thread of its
 * own, which loads `src/executor/index.js` and calls its
 *
 *   executePlan(model, shape, plan, { onProgress(fraction, label), saved })
 *
 * Like `meshplan execute`, it predicts on the profile `meshplan calibrate` saved in the working directory
 * (meshplan-profile.json) where this machine measured it, and calibrates first otherwise; the profile it
 * measured then serves the session's later runs. Stopping a run terminates its thread and the executor's
 * ranks with it.
 */

/**
 * What the `x` view shows: the plan, progress while it runs, then the table, why it did not run, or that
 * the user stopped it.
 */
export type Execution = { readonly title: string } & (
  | { readonly state: "running"; readonly fraction: number; readonly label: string }
  | { readonly state: "done"; readonly table: PredictedVsMeasured }
  | { readonly state: "failed"; readonly message: string }
  | { readonly state: "stopped" }
);

export class ExecuteError extends Error {
  constructor(readonly code: "unavailable" | "too-large" | "failed" | "stopped", message: string) {
    super(message);
  }
}

/**
 * Runs a plan for real and returns predicted against measured; rejects with an ExecuteError. Once
 * `signal` aborts, the run's work stops and the promise rejects with code "stopped".
 */
export type ExecuteFn = (model: ModelSpec, shape: ClusterShape, plan: Plan, onProgress: Progress, signal: AbortSignal) => Promise<PredictedVsMeasured>;

/**
 * What runs here: the executor trains on this machine's CPU with one worker thread per rank, so a model
 * of at most 50 M parameters (tiny-gpt has 0.13 M) and at most 16 ranks, the executor's own limit
 * (MAX_EXECUTOR_RANKS, src/executor/validate.ts; it checks the rest of the plan itself).
 */
export const EXECUTE_LIMITS = { parameters: 50e6, ranks: 16 } as const;

/** Why a plan cannot run locally, or undefined when it can. */
export function tooLargeToExecute(model: ModelSpec, plan: Plan): string | undefined {
  const params = totalParams(model);
  if (params > EXECUTE_LIMITS.parameters) {
    return `${model.name} has ${(params / 1e9).toFixed(1)} B parameters; x runs models up to ${EXECUTE_LIMITS.parameters / 1e6} M here (try --model tiny-gpt --gpus 4)`;
  }
  const ranks = plan.dp * plan.tp * plan.pp * plan.cp + plan.parameterServers;
  if (ranks > EXECUTE_LIMITS.ranks) return `${ranks} ranks; x runs at most ${EXECUTE_LIMITS.ranks} here (fewer --gpus)`;
  return undefined;
}

/** The backend `x` runs on (src/executor/index.ts executePlan). */
const X_BACKEND = "wasm";

/**
 * As `meshplan execute` chooses (profile-file.ts chooseSavedProfile); a profile measured earlier in this
 * session stands in for the calibration.
 */
export function chooseProfile(disk: ProfileOnDisk, session: DeviceProfile | undefined): ProfileChoice {
  const choice = chooseSavedProfile(disk, X_BACKEND);
  if (choice.kind === "calibrate" && session !== undefined) return { kind: "use", saved: { profile: session, file: SESSION_PROFILE } };
  return choice;
}

/** A run in progress: stop() ends its work. */
export interface RunHandle {
  stop(): void;
}

/** Starts a job and passes on its messages. */
export type StartRun = (job: RunJob, onMessage: (m: RunMessage) => void) => RunHandle;

const RUN_WORKER = new URL("./run-worker.js", import.meta.url);

/** True where the compiled run worker exists (the built package; not the TypeScript sources under test). */
export function runWorkerAvailable(): boolean {
  return builtFileExists(RUN_WORKER);
}

/** The job on a worker thread of its own: terminating it ends the executor's ranks too (they are its threads). */
export const workerRun: StartRun = (job, onMessage) => {
  const worker = new Worker(RUN_WORKER, { workerData: job });
  let ended = false;
  worker.on("message", (m: RunMessage) => {
    onMessage(m);
    if (m.type === "done" || m.type === "failed") {
      ended = true;
      void worker.terminate(); // ranks or timers the run left behind go with it
    }
  });
  worker.on("error", (e) => {
    ended = true;
    onMessage({ type: "failed", code: "failed", message: `execution failed: ${e.message}` });
  });
  worker.on("exit", (code) => {
    if (!ended) onMessage({ type: "failed", code: "failed", message: `execution failed: its thread exited (code ${code})` });
    ended = true;
  });
  return {
    stop: () => {
      ended = true;
      void worker.terminate();
    },
  };
};

/**
 * The job on this thread (where the worker is not built: the TypeScript sources): it cannot be stopped
 * midway; its messages stop counting.
 */
export const inlineRun: StartRun = (job, onMessage) => {
  let live = true;
  void runJob(job, (m) => {
    if (live) onMessage(m);
  });
  return {
    stop: () => {
      live = false;
    },
  };
};

export interface SessionOptions {
  /** Default: the worker where it is built, else this thread. */
  readonly start?: StartRun;
  /** Default: meshplan-profile.json in the working directory, read at every run as execute reads it. */
  readonly disk?: () => ProfileOnDisk;
}

/**
 * `x` for one explorer session: each run checks the saved profile as `meshplan execute` does, and the
 * profile a run had to measure is kept for the session's later runs (calibrating takes about a minute
 * on 2 cores; it is not written to disk, as `meshplan execute` writes none).
 */
export function sessionExecutor(o: SessionOptions = {}): ExecuteFn {
  let session: DeviceProfile | undefined;
  const start = o.start ?? (runWorkerAvailable() ? workerRun : inlineRun);
  const disk = o.disk ?? (() => profileOnDisk(DEFAULT_PROFILE_FILE));
  return (model, shape, plan, onProgress, signal) => new Promise((resolve, reject) => {
    const large = tooLargeToExecute(model, plan);
    if (large !== undefined) return reject(new ExecuteError("too-large", large));
    const choice = chooseProfile(disk(), session);
    if (choice.kind === "refuse") return reject(new ExecuteError("failed", choice.error.message));
    const job: RunJob = { model, shape, plan, ...(choice.kind === "use" ? { saved: choice.saved } : { calibrateBecause: choice.because }) };
    let settled = false;
    const handle = start(job, (m) => {
      if (m.type === "profile") session = m.profile; // kept even when the run then fails
      if (settled) return;
      if (m.type === "progress") onProgress(m.fraction, m.label);
      else if (m.type === "done") {
        settled = true;
        resolve(m.table);
      } else if (m.type === "failed") {
        settled = true;
        reject(new ExecuteError(m.code, m.message));
      }
    });
    const stop = () => {
      if (settled) return;
      settled = true;
      handle.stop();
      reject(new ExecuteError("stopped", "stopped before its end"));
    };
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
}
