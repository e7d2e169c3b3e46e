import type { Plan } from "../../spec/types.js";

/**
 * Host time per transformer layer and micro-batch (its forward, its recomputation and its backward) that
 * blocking kernel launches expose (plan.launchBlocking, CUDA_LAUNCH_BLOCKING=1): with it every launch
 * returns only when its kernel has finished, so the GPU idles while the host issues the next one.
 *
 * Derived from the one published pair of runs that differ only in that setting: BigScience's
 * chronicles-prequel.md (train/tr11-176B-ml, section "dealing with JZ hanging on the large model"), the
 * 200B candidate (NLAYERS 80, NHIDDEN 14400, vocabulary 250k, sequence 2048) on 80 A100s, TP 8, PP 10,
 * DP 1, micro-batch 1, global batch 512, full recomputation: 97.20 TFLOP/s with asynchronous launches,
 * 91.04 with blocking ones. Megatron's FLOP count for that iteration, 96 B s l h^2 (1 + s/6h + V/16lh)
 * = 1.73e18, gives 222.7 s and 237.8 s, 15.1 s apart; DeepSpeed's pipeline runs m + pp - 1 = 521 stage
 * passes of 8 layers on its critical path, so 15.1 s / (521 * 8) = 3.6 ms per layer and micro-batch.
 * (The prequel's TFLOP/s of that date came from an estimate it later calls about 3% low; the difference
 * is a ratio and moves by as much.) It is Megatron-DeepSpeed's layer on that cluster's hosts: the count
 * of kernels and the host's time for each, not the layer's size, set it.
 */
export const BLOCKING_LAUNCH_SECONDS_PER_LAYER = 3.6e-3;

/**
 * Shares of that time by pass, as the kernels of a layer fall (a forward, a recomputed forward, a
 * backward of about twice the forward's kernels): forward 1/4, recomputation 1/4, backward 1/2.
 */
const FORWARD_SHARE = 0.25;
const RECOMPUTE_SHARE = 0.25;
const BACKWARD_SHARE = 0.5;

export interface LaunchSeconds {
  readonly forwardSeconds: number;
  readonly backwardSeconds: number;
  readonly recomputeSeconds: number;
}

/**
 * What blocking launches add to a stage's passes per micro-batch: `layers` transformer layers, of which
 * `recomputedLayers` recompute their whole forward (a layer that keeps its activations launches no
 * recomputation). Zero when launches are asynchronous. The embedding and the output layer are left out.
 */
export function blockingLaunchSeconds(plan: Plan, layers: number, recomputedLayers: number): LaunchSeconds {
  if (plan.launchBlocking !== true) return { forwardSeconds: 0, backwardSeconds: 0, recomputeSeconds: 0 };
  const perLayer = BLOCKING_LAUNCH_SECONDS_PER_LAYER;
  return {
    forwardSeconds: layers * FORWARD_SHARE * perLayer,
    backwardSeconds: layers * BACKWARD_SHARE * perLayer,
    recomputeSeconds: recomputedLayers * RECOMPUTE_SHARE * perLayer,
  };
}
