import { parentPort, workerData } from "node:worker_threads";
import { simulate } from "../simulator/simulate.js";
import type { SimulateJob, SimulateReply } from "./simulate-job.js";

/** The thread of one simulation for `s` (workerData: the SimulateJob): replies with its Estimate or why not. */
const port = parentPort;
if (port === null) throw new Error("simulate-worker.js runs as a worker thread");
const { model, shape, plan } = workerData as SimulateJob;
let reply: SimulateReply;
try {
  reply = { estimate: simulate(model, shape, plan).estimate };
} catch (e) {
  reply = { error: e instanceof Error ? e.message : String(e) };
}
port.postMessage(reply);
