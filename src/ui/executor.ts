import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { totalParams } from "../planner/cost/params.js";
import { savedProfile, type SavedProfile } from "../cli/profile-file.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";

/**
 * The explorer's one seam to the executor (`x`). The executor is built separately; the explorer loads
 * `src/executor/index.js` at run time only, and expects it to export
 *
 *   executePlan(model, shape, plan, { onProgress(fraction, label), saved? }): Promise<PredictedVsMeasured>
 *
 * (`saved`: the device profile `meshplan calibrate` saved, when there is one.)
 *
 * Until that exists, `x` says the executor is not available yet.
 */
export interface PredictedVsMeasured {
  readonly title: string;
  readonly rows: readonly { readonly quantity: string; readonly predicted: string; readonly measured: string }[];
  readonly notes?: readonly string[];
}

export type Progress = (fraction: number, label: string) => void;

/** What the `x` view shows: the plan, progress while it runs, then the table or why it did not run. */
export type Execution = { readonly title: string } & (
  | { readonly state: "running"; readonly fraction: number; readonly label: string }
  | { readonly state: "done"; readonly table: PredictedVsMeasured }
  | { readonly state: "failed"; readonly message: string }
);

export interface ExecutorModule {
  executePlan(model: ModelSpec, shape: ClusterShape, plan: Plan, options: { onProgress: Progress; saved?: SavedProfile }): Promise<PredictedVsMeasured>;
}

export class ExecuteError extends Error {
  constructor(readonly code: "unavailable" | "too-large" | "failed", message: string) {
    super(message);
  }
}

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

const EXECUTOR_INDEX = new URL("../executor/index.js", import.meta.url);

/** Loads the executor's entry point where it exists and exports `executePlan`; undefined otherwise. */
export async function loadExecutor(): Promise<ExecutorModule | undefined> {
  if (EXECUTOR_INDEX.protocol !== "file:" || !existsSync(fileURLToPath(EXECUTOR_INDEX))) return undefined;
  const mod = (await import(EXECUTOR_INDEX.href)) as Partial<ExecutorModule>;
  return typeof mod.executePlan === "function" ? (mod as ExecutorModule) : undefined;
}

/**
 * Runs the plan for real and returns predicted against measured; rejects with an ExecuteError. Like
 * `meshplan execute`, it predicts on the profile `meshplan calibrate` saved in the working directory where
 * there is one (`saved`), and otherwise has the executor measure one first.
 */
export async function executePlan(
  model: ModelSpec, shape: ClusterShape, plan: Plan, onProgress: Progress, load: () => Promise<ExecutorModule | undefined> = loadExecutor,
  saved: () => SavedProfile | undefined = savedProfile,
): Promise<PredictedVsMeasured> {
  const large = tooLargeToExecute(model, plan);
  if (large !== undefined) throw new ExecuteError("too-large", large);
  const executor = await load();
  if (executor === undefined) {
    throw new ExecuteError("unavailable", "executor not available yet: src/executor/index.ts does not export executePlan");
  }
  try {
    const profile = saved();
    return await executor.executePlan(model, shape, plan, { onProgress, ...(profile === undefined ? {} : { saved: profile }) });
  } catch (e) {
    throw new ExecuteError("failed", `execution failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}
