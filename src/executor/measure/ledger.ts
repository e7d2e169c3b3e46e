import type { Tensor } from "@tensorflow/tfjs";
import type { Tf } from "../model/ops.js";

/**
 * Memory one rank holds in TensorFlow.js: the activations it keeps for backward passes (counted tensor by
 * tensor as they are kept and released) and every live tensor (tf.memory().numBytes, sampled whenever an
 * activation is kept and after each unit's backward), each with its peak.
 */
export class MemoryLedger {
  activationBytes = 0;
  peakActivationBytes = 0;
  peakTfBytes = 0;

  constructor(private readonly tf: Tf) {}

  /**
   * `sample` false: the tensor is kept in the middle of a backward (ZB-H1's tensors for W), where the
   * backward's own temporaries are live; live tensors are then sampled after the unit's backward, as for
   * every other backward, so that the schedules' peaks are taken at the same points.
   */
  keep(t: Tensor, kept: Tensor[], sample = true): Tensor {
    this.tf.keep(t);
    kept.push(t);
    this.activationBytes += t.size * 4;
    this.peakActivationBytes = Math.max(this.peakActivationBytes, this.activationBytes);
    if (sample) this.sample();
    return t;
  }

  release(kept: readonly Tensor[]): void {
    for (const t of kept) {
      this.activationBytes -= t.size * 4;
      t.dispose();
    }
  }

  sample(): void {
    this.peakTfBytes = Math.max(this.peakTfBytes, this.tf.memory().numBytes);
  }
}
