import { parentPort, workerData } from "node:worker_threads";

/** One of two threads of copyCeiling (copy-ceiling.ts): what it copies, and the buffers it shares. */
interface CeilingJob {
  readonly rank: 0 | 1;
  readonly kind: "copy" | "all-gather";
  readonly floats: number;
  readonly repeat: number;
  readonly barrier: SharedArrayBuffer;
  readonly inputs: readonly SharedArrayBuffer[];
  readonly outputs: readonly SharedArrayBuffer[];
}

const job = workerData as CeilingJob;
const input = new Float32Array(job.inputs[job.rank]!).fill(job.rank + 1);
const output = new Float32Array(job.outputs[job.rank]!);
const peerOutput = new Float32Array(job.outputs[1 - job.rank]!);
const counter = new Int32Array(job.barrier);
let generation = 0;
/** Both threads arrive before either goes on (a spin on one shared counter: the collectives' own way). */
const barrier = () => {
  generation++;
  Atomics.add(counter, 0, 1);
  while (Atomics.load(counter, 0) < 2 * generation);
};
const half = job.floats / 2;
const seconds: number[] = [];
for (let i = 0; i < job.repeat; i++) {
  barrier();
  const start = performance.now();
  if (job.kind === "copy") output.set(input);
  else {
    // all-gather, pushed: this rank's block into its own output and the other's, then one barrier
    const block = input.subarray(0, half);
    output.set(block, job.rank * half);
    peerOutput.set(block, job.rank * half);
    barrier();
  }
  seconds.push((performance.now() - start) / 1e3);
}
parentPort!.postMessage(seconds);
