import { LOSS_BYTES_PER_LOGIT } from "../../planner/cost/compute.js";
import { soloGroup } from "../model/context.js";
import { crossEntropyBackward, crossEntropyForward } from "../model/ends.js";
import type { Tf } from "../model/ops.js";
import { passCostFrom, upperMedian, type PassCost } from "./stats.js";

/**
 * Tokens per micro-batch the cross-entropy is timed at: one and eight 32-token sequences, the fit shapes'
 * micro-batch and tiny-gpt's largest. At these sizes a fixed part (a dozen TensorFlow.js calls and the
 * one-hot rows built in JavaScript) and a part that grows with the logits are both large: measured on the
 * 2-core VM, 0.52 ms for 64 x 256 logits and 1.34 ms for 256 x 256 forward and backward, where the cost
 * model at the layers' fitted element-wise rate charged 1.3 and 5.3 ms (src/executor/TIME-RECORD.md, "The loss, measured").
 */
export const LOSS_TOKENS: readonly number[] = [32, 256];

/** The executor's cross-entropy as the cost model prices it: a fixed time per pass and a rate in LOSS_BYTES_PER_LOGIT. */
export type LossCost = PassCost;

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
 * passCostFrom, which leaves the larger size's time all to the rate where noise bent the line).
 */
export function lossCost(tf: Tf, vocab: number, repeats = LOSS_REPEATS): LossCost {
  const bytes = LOSS_TOKENS.map((t) => 2 * LOSS_BYTES_PER_LOGIT * t * vocab);
  const rounds = LOSS_TOKENS.map(() => [] as number[]);
  for (let i = 0; i < LOSS_WARMUP_PAIRS; i++) LOSS_TOKENS.forEach((t) => lossSeconds(tf, t, vocab, 0));
  // round 0 untimed as well, as every timing of calibrate warms up first
  for (let round = 0; round <= LOSS_ROUNDS; round++) {
    LOSS_TOKENS.forEach((t, i) => {
      const seconds = lossSeconds(tf, t, vocab, repeats);
      if (round > 0) rounds[i]!.push(seconds);
    });
  }
  return passCostFrom(bytes, rounds.map(upperMedian));
}

/**
 * The sizes are timed in turn, LOSS_ROUNDS rounds of LOSS_REPEATS each after one untimed round, and each
 * size's figure is the median of its rounds: timed one after the other (21 each), a slow spell landed on
 * one size and moved the line's two ends apart. On the 2-core VM (2026-11-24) the 256-token pair's median
 * of 9 ran at 0.8-1.0 ms or at 2.6-3.8 ms from one round to the next, in spells. Three calibrations within
 * 4 minutes, sizes one after the other, fitted the line to 0 us and 1.94, 1.95 and 1.25 GB/s (the
 * intercept came out negative, so the larger size's time went all to the rate), one an hour before 338 us
 * and 0.61 GB/s: priced tiny-gpt's last stage 4% below its first or 34% above, and the pp2 bubble 0.21 or
 * 0.13. In turn, two calibrations fitted 44 us and 0.55 GB/s, 51 us and 0.62 GB/s: 0.50 ms for the
 * forward and backward of 32 x 256 logits, where the pipelined ZB-V steps ran the output layer and the
 * loss in about 0.5 ms at the profile's speed.
 */
const LOSS_ROUNDS = 5;

/**
 * Untimed forward-and-backward pairs at each size before the rounds. Calibrate measures the loss before
 * anything else has run the cross-entropy's kernels, and the first few hundred pairs run slow: on the 2-core
 * VM (2026-11-24, fresh processes, 32 x 256 logits, medians of 10 pairs in turn) 1.5-2.1 ms at first, then
 * 0.3-0.6 with spells near 1 ms, and 0.14-0.23 from about the 250th pair on, with wasm's lazy tiering turned
 * off as with it on (so not only the wasm compiler's warm-up). lossCost's line without this warm-up priced
 * the pair at 260-300 us in three fresh processes (and 0.49 ms inside a calibration, 195 us fixed per pass),
 * after 200 pairs at 142-146 us (25-27 us per pass, 2.5 GB/s) and after 400 at 137-163: the executor's
 * steps run the loss warm, after 15 warm-up steps of layers whose kernels and dispatch it shares. Costs about
 * 0.7 s here.
 */
const LOSS_WARMUP_PAIRS = 200;
const LOSS_REPEATS = 9;

