import { parentPort, workerData } from "node:worker_threads";
import { CommError } from "../comm/sync.js";
import type { FromWorker, HeapExchange, HeapsMessage, Program, ProgramName, SerializedError, WorkerInput } from "./protocol.js";

/** Entry of every worker thread: runs the named program and reports its result or its error. */
const PROGRAMS: Record<ProgramName, () => Promise<Program>> = {
  rank: async () => (await import("./rank.js")).rankProgram,
  server: async () => (await import("../parallel/ps-server.js")).serverProgram,
  probe: async () => (await import("./probe.js")).probeProgram,
  matmul: async () => (await import("../measure/matmul.js")).matmulProgram,
};

function serialize(e: unknown): SerializedError {
  if (e instanceof CommError) return { name: e.name, message: e.message, failure: e.failure, ...(e.stack === undefined ? {} : { stack: e.stack }) };
  if (e instanceof Error) return { name: e.name, message: e.message, ...(e.stack === undefined ? {} : { stack: e.stack }) };
  return { name: "Error", message: String(e) };
}

const input = workerData as WorkerInput;
const post = (m: FromWorker) => parentPort!.postMessage(m);
/** The heap exchange, bounded by the run's collective timeout (a rank that never offers its heap). */
const exchangeHeaps: HeapExchange = (own) => {
  if (input.shareHeap !== true) throw new Error(`internal: rank ${input.rank} exchanges heaps but was not started to share one`);
  let timer: NodeJS.Timeout | undefined;
  const answer = new Promise<HeapsMessage>((resolve) => parentPort!.once("message", resolve));
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new CommError(input.rank, "heap exchange", "timeout", `timed out after ${input.timeoutSeconds} s waiting for the other ranks to offer their heaps`));
    }, input.timeoutSeconds * 1e3);
  });
  post({ type: "heap", rank: input.rank, heap: own ?? null });
  return Promise.race([answer, deadline]).then((m) => m.heaps).finally(() => clearTimeout(timer));
};
try {
  const program = await PROGRAMS[input.program]();
  const result = await program(input, (step, phase, passes) => post({ type: "progress", rank: input.rank, step, phase, ...(passes === undefined ? {} : { passes }) }), exchangeHeaps);
  post({ type: "result", rank: input.rank, result });
} catch (e) {
  post({ type: "error", rank: input.rank, error: serialize(e) });
}
