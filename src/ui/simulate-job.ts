import { builtFileExists } from "./built-file.js";
import { Worker } from "node:worker_threads";
import type { Estimate } from "../planner/cost/types.js";
import { simulate } from "../simulator/simulate.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";

/** Simulates one plan for `s` (save): seconds for a large plan, so never in the middle of a key press. */
export type SimulateFn = (model: ModelSpec, shape: ClusterShape, plan: Plan) => Promise<Estimate>;

/** Long enough for Ink (at most 30 frames a second) to draw what the status line says before the work. */
const DRAW_MS = 50;

/** On this thread, once the screen has drawn the status line (tests, and where no worker is built). */
export const deferredSimulate: SimulateFn = (model, shape, plan) => new Promise((resolve, reject) => {
  setTimeout(() => {
    try {
      resolve(simulate(model, shape, plan).estimate);
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  }, DRAW_MS);
});

export interface SimulateJob {
  readonly model: ModelSpec;
  readonly shape: ClusterShape;
  readonly plan: Plan;
}

export type SimulateReply = { readonly estimate: Estimate } | { readonly error: string };

const WORKER_FILE = new URL("./simulate-worker.js", import.meta.url);

/**
 * On a worker thread of its own per call (simulate-worker.ts), so the UI thread keeps drawing and reading
 * keys. The thread does not hold the process open: quitting during a save abandons it.
 */
export const workerSimulate: SimulateFn = (model, shape, plan) => new Promise((resolve, reject) => {
  const worker = new Worker(WORKER_FILE, { workerData: { model, shape, plan } satisfies SimulateJob });
  worker.unref();
  worker.once("message", (m: SimulateReply) => ("estimate" in m ? resolve(m.estimate) : reject(new Error(m.error))));
  worker.once("error", reject);
  worker.once("exit", (code) => reject(new Error(`the simulation thread ended (code ${code})`))); // after a reply: ignored
});

/** The worker where it is built (the package), else on this thread after a draw. */
export function createSimulate(): SimulateFn {
  return builtFileExists(WORKER_FILE) ? workerSimulate : deferredSimulate;
}
