import type { GpuSpec, ModelSpec, Plan } from "../../spec/types.js";
import { BYTES_16 } from "./activations.js";

/**
 * A mixture of experts' token routing per layer and micro-batch, besides its GEMMs (the router's linear
 * layer and the experts are compute.ts layerTimes's): the router's softmax and top-k, the dispatch that
 * copies each token's row into the buffers of its topK experts, and the combine that adds each token's
 * copies back, weighted by their probabilities (GShard, Lepikhin et al. 2020, section 2.2; Megatron-Core's
 * token permutation and unpermutation, moe/token_dispatcher.py, do these as row gathers and scatters).
 * They are bound by memory traffic; in 16-bit elements per token, with E experts, top k and width h:
 *
 * - forward: the softmax reads and writes E; the dispatch reads and writes each copy's row, 2 k h; the
 *   combine reads the k copies' outputs and writes the token's row, k h + h: 2E + 3kh + h;
 * - backward: the combine's backward reads the incoming gradient and each copy's output (for its gate's
 *   gradient) and writes each copy's gradient, 3 k h; the dispatch's backward reads the k copies' input
 *   gradients and writes their sum, k h + h; the softmax's backward reads its output and incoming gradient
 *   and writes one, 3E: 3E + 4kh + h.
 *
 * Every token of the rank's micro-batch is routed: x = micro-batch x seqLen / cp tokens, whole rows of h
 * (under tensor parallelism every tp rank routes the gathered rows, as Megatron-Core's expert tensor
 * parallelism does). Zero for a dense model.
 */
export interface MoeRoutingBytes {
  readonly forwardBytes: number;
  readonly backwardBytes: number;
}

export function moeRoutingBytes(model: ModelSpec, plan: Plan): MoeRoutingBytes {
  const moe = model.moe;
  if (moe === undefined) return { forwardBytes: 0, backwardBytes: 0 };
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const { experts: e, topK: k } = moe;
  const h = model.hiddenSize;
  return {
    forwardBytes: BYTES_16 * x * (2 * e + 3 * k * h + h),
    backwardBytes: BYTES_16 * x * (3 * e + 4 * k * h + h),
  };
}

/**
 * The routing's seconds per pass (forward; backward, an input-gradient pass: ZB-H1's B): its bytes at the
 * GPU's routing rate and fixed time per pass where the GPU gives them (the executor's profile, which times
 * its own routing: many small TensorFlow.js calls, measure/routing.ts), else at the element-wise rate and
 * no fixed time (on a GPU the launches are asynchronous and hidden behind the kernels).
 */
export function moeRoutingTimes(model: ModelSpec, gpu: GpuSpec, plan: Plan): { forwardSeconds: number; backwardSeconds: number } {
  if (model.moe === undefined) return { forwardSeconds: 0, backwardSeconds: 0 };
  const b = moeRoutingBytes(model, plan);
  const e = gpu.efficiency;
  const fixed = e.moeRoutingOverheadSeconds ?? 0;
  const rate = gpu.hbmBytesPerSecond * (e.moeRoutingBandwidth ?? e.memoryBandwidth);
  return { forwardSeconds: fixed + b.forwardBytes / rate, backwardSeconds: fixed + b.backwardBytes / rate };
}
