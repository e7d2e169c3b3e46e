import { optimizerBytesPerParam } from "../../planner/cost/stages.js";
import type { Tf } from "../model/ops.js";
import { upperMedian } from "./stats.js";
import { adamState, adamStep, DEFAULT_ADAM } from "../parallel/adam.js";

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
