import { parentPort, workerData } from "node:worker_threads";
import { quickSearch, refinedSearch, type PlanRequest } from "./plan-job.js";

/**
 * One of the explorer's search threads (workerData.job: "quick" or "refine"). workerData.current holds
 * the newest request's id, written by the UI thread: requests that are already stale when they come up
 * are skipped, and a refining search stops at its next simulation once it is stale.
 */
const port = parentPort;
if (port === null) throw new Error("plan-worker.js runs as a worker thread");
const { job, current } = workerData as { job: "quick" | "refine"; current: Int32Array };
port.on("message", (req: PlanRequest) => {
  const isCurrent = () => Atomics.load(current, 0) === req.id;
  if (!isCurrent()) return;
  const update = job === "quick" ? quickSearch(req) : refinedSearch(req, isCurrent);
  if (update !== undefined) port.postMessage(update);
});
