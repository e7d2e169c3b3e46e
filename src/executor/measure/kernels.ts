import { optimizerBytesPerParam } from "../../planner/cost/stages.js";
import type { Tf } from "../model/ops.js";
import { upperMedian } from "./stats.js";
import { adamState, adamStep, DEFAULT_ADAM } from "../parallel/adam.js";

/**
 * The fixed cost of one TensorFlow.js kernel on this backend: median seconds per element-wise add of two
 * 64-float tensors, over chains of `chain` adds (each one disposed), the last read back with dataSync.
 * At this size the add's own work is nothing beside the dispatch (kernel lookup, tensor bookkeeping,
 * the call into wasm), which every kernel of a training step pays.
 */
export function kernelOverheadSeconds(tf: Tf, chain = 400, repeats = 9): number {
  const x = tf.ones([64]);
  const run = () => {
    let y = tf.zeros([64]);
    const t0 = performance.now();
    for (let i = 0; i < chain; i++) {
      const next = tf.add(y, x);
      y.dispose();
      y = next;
    }
    y.dataSync();
    const seconds = (performance.now() - t0) / 1e3 / chain;
    y.dispose();
    return seconds;
  };
  run();
  const times = Array.from({ length: repeats }, run);
  x.dispose();
  return upperMedian(times);
}

/** Kernels that only relabel a tensor's shape or hand it through: no dispatch cost worth counting. */
const FREE = new Set(["Reshape", "Identity"]);

/** Kernels a function runs (tf.profile), less the free ones. */
export async function countKernels(tf: Tf, f: () => Promise<unknown>): Promise<number> {
  const info = await tf.profile(async () => {
    await f();
  });
  return info.kernels.filter((k) => !FREE.has(k.name)).length;
}

/**
 * The executor's optimizer step per parameter, as bytes per second in the cost model's count (2 x 12 bytes
 * of fp32 states read and written, a 4-byte gradient, a 2-byte weight: planner/cost/stages.ts): Adam over
 * `n` float32 elements, the gradient cleared, the new weights made a tensor (ModelState.update).
 */
export function optimizerBytesPerSecond(tf: Tf, n = 1 << 20, repeats = 7): number {
  const params = new Float32Array(n).fill(0.5);
  const grads = new Float32Array(n).fill(0.01);
  const state = adamState(n);
  const times: number[] = [];
  for (let step = 1; step <= repeats + 1; step++) {
    const t0 = performance.now();
    adamStep(params, grads, state, step, DEFAULT_ADAM);
    grads.fill(0.01);
    tf.tensor(params).dispose();
    if (step > 1) times.push((performance.now() - t0) / 1e3);
  }
  // The cost model's count for fp32 gradients, which the executor keeps.
  return (n * optimizerBytesPerParam({ fp32Gradients: true })) / upperMedian(times);
}
