import { parentPort, workerData } from "node:worker_threads";
import { runJob, type RunJob } from "./run-job.js";

/**
 * The thread of one run of `x` (workerData: the RunJob). The executor's ranks are worker threads of this
 * one, so terminating it (Esc, q) ends them all at once.
 */
const port = parentPort;
if (port === null) throw new Error("run-worker.js runs as a worker thread");
await runJob(workerData as RunJob, (m) => port.postMessage(m));
