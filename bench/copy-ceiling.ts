import { Worker } from "node:worker_threads";
import { upperMedian } from "../src/executor/measure/stats.js";

/**
 * What two threads can do with this machine's memory at best, as a ceiling for the collectives' speed
 * target: both copying at once (each thread's bandwidth), and an all-gather of `bytes` from tensor to
 * tensor with nothing but the copies (each thread writes its half into both outputs with TypedArray.set,
 * then one barrier; no TensorFlow.js, no staging, no segment tables). Medians over `repeat` calls, in
 * bytes per second: the copy's per thread, the all-gather's as NCCL bus bandwidth ((n-1)/n S / t).
 */
export async function copyCeiling(bytes: number, repeat: number): Promise<{ copyPerThread: number; allGatherBus: number }> {
  const run = async (kind: "copy" | "all-gather"): Promise<number> => {
    const inputs = [0, 1].map(() => new SharedArrayBuffer(bytes));
    const outputs = [0, 1].map(() => new SharedArrayBuffer(bytes));
    const barrier = new SharedArrayBuffer(4);
    const times = await Promise.all([0, 1].map((rank) => new Promise<number[]>((done, fail) => {
      const w = new Worker(new URL("./copy-ceiling-worker.js", import.meta.url), { workerData: { rank, kind, floats: bytes / 4, repeat, barrier, inputs, outputs } });
      w.once("message", (m: number[]) => done(m));
      w.once("error", fail);
    })));
    // a call lasts until the slower thread ends it
    return upperMedian(times[0]!.map((t, i) => Math.max(t, times[1]![i]!)));
  };
  return { copyPerThread: bytes / (await run("copy")), allGatherBus: (0.5 * bytes) / (await run("all-gather")) };
}
