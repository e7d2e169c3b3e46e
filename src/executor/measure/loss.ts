import { LOSS_BYTES_PER_LOGIT } from "../../planner/cost/compute.js";
import { soloGroup } from "../model/context.js";
import { crossEntropyBackward, crossEntropyForward } from "../model/ends.js";
import type { Tf } from "../model/ops.js";
import { fixedAndPerUnit, upperMedian } from "./stats.js";

/**
 * Tokens per micro-batch the cross-entropy is timed at: one and eight 32-token sequences, the fit shapes'
 * micro-batch and tiny-gpt's largest. At these sizes a fixed part (a dozen TensorFlow.js calls and the
 * one-hot rows built in JavaScript) and a part that grows with the logits are both large: measured on the
 * 2-core VM, 0.52 ms for 64 x 256 logits and 1.34 ms for 256 x 256 forward and backward, where the cost
 * model at the layers' fitted element-wise rate charged 1.3 and 5.3 ms (src/executor/README.md "Time").
 */
export const LOSS_TOKENS: readonly number[] = [32, 256];

/** The executor's cross-entropy as the cost model prices it: a fixed time per pass and a streaming rate. */
export interface LossCost {
  /** Fixed seconds per pass (forward or backward); the cost model splits the measured pair evenly. */
  readonly overheadSeconds: number;
  /** The cost model's LOSS_BYTES_PER_LOGIT each way, per second. */
  readonly bytesPerSecond: number;
}

/** The executor's cross-entropy forward and backward over `tokens` x `vocab` float32 logits: median seconds. */
export function lossSeconds(tf: Tf, tokens: number, vocab: number, repeats: number): number {
  const ctx = { tf, tp: soloGroup(tf), stepTokens: tokens, model: { vocabSize: vocab } };
  const targets = Int32Array.from({ length: tokens }, (_, i) => (i * 7) % vocab);
  const logits = tf.randomNormal([tokens, vocab], 0, 1, "float32", 1);
  const times: number[] = [];
  for (let rep = 0; rep <= repeats; rep++) {
    const t0 = performance.now();
    const { probs } = crossEntropyForward(ctx, tf.clone(logits), targets);
    const d = crossEntropyBackward(ctx, probs, targets);
    d.dataSync();
    const t1 = performance.now();
    probs.dispose();
    d.dispose();
    if (rep > 0) times.push((t1 - t0) / 1e3);
  }
  logits.dispose();
  return upperMedian(times);
}

/**
 * The line through the cross-entropy's times at LOSS_TOKENS against the cost model's bytes (both passes):
 * its intercept is the fixed part (half of it per pass), its slope the streaming rate (stats.ts
 * fixedAndPerUnit, which leaves the larger size's time all to the rate where noise bent the line).
 */
export function lossCost(tf: Tf, vocab: number, repeats = 21): LossCost {
  const bytes = LOSS_TOKENS.map((t) => 2 * LOSS_BYTES_PER_LOGIT * t * vocab);
  const seconds = LOSS_TOKENS.map((t) => lossSeconds(tf, t, vocab, repeats));
  return lossCostFrom(bytes, seconds);
}

export function lossCostFrom(bytes: readonly number[], seconds: readonly number[]): LossCost {
  const c = fixedAndPerUnit(bytes, seconds);
  return { overheadSeconds: c.fixedSeconds / 2, bytesPerSecond: 1 / c.secondsPerUnit };
}
