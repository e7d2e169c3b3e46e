import { forwardFlopsPerToken, layerForwardFlopsPerToken } from "../planner/cost/flops.js";
import { totalParams } from "../planner/cost/params.js";
import type { ModelSpec } from "../spec/types.js";
import type { FlopConvention, SourceProfile } from "./profiles.js";
import type { MeasurementRecord } from "./records.js";

/**
 * What a record measured, and the throughput it implies in tokens per second per GPU. Every comparison is
 * made on throughput: a prediction is converted back into the record's own unit (seconds per iteration,
 * tokens/s per GPU, or TFLOP/s per GPU counted the source's way) only for display, so the relative error
 * is the same in either unit. Preference: iteration time, then tokens/s, then TFLOP/s (whose FLOP counting
 * must be known: models/measurements/README.md, "How each source counts FLOPs").
 */
export type MeasureKind = "iteration-seconds" | "tokens-per-second-per-gpu" | "tflops-per-gpu";

export interface Measurement {
  readonly kind: MeasureKind;
  /** As published, in the kind's unit. */
  readonly value: number;
  /** What is compared, in words. */
  readonly compares: string;
  readonly tokensPerSecondPerGpu: number;
  /** Tokens in one step (global batch times sequence). */
  readonly tokensPerStep: number;
  readonly gpus: number;
  /** FLOPs per token in the source's convention (TFLOP/s records only). */
  readonly flopsPerToken: number | undefined;
}

/**
 * FLOPs per token in a source's convention:
 * - megatron-hardware: 96*l*h^2*(1 + s/(6h) + V/(16*l*h)) per token (Narayanan et al. 2021 with the
 *   full-recompute forward; the SC'21 and BLOOM logs);
 * - megatron-model: each matrix product counted, attention over the full square, no recompute; for a GPT this
 *   is 72*l*h^2*(1 + s/(6h) + V/(12*l*h)) (Narayanan et al. 2021, eq. 3; src/planner/cost/flops.ts);
 * - palm: 6N + 12*L*H*Q*T (Chowdhery et al. 2022, appendix B), N all parameters.
 */
export function flopsPerToken(convention: FlopConvention, model: ModelSpec, seqLen: number): number {
  const l = model.layers;
  const h = model.hiddenSize;
  switch (convention) {
    case "megatron-hardware":
      return 96 * l * h * h * (1 + seqLen / (6 * h) + model.vocabSize / (16 * l * h));
    case "megatron-model": {
      const f = forwardFlopsPerToken(model, seqLen);
      return 3 * (l * layerForwardFlopsPerToken(f) + f.logits);
    }
    case "palm":
      return 6 * totalParams(model) + 12 * l * model.attentionHeads * model.headDim * seqLen;
  }
}

const CONVENTION_WORDS: Record<FlopConvention, string> = {
  "megatron-hardware": "hardware TFLOP/s per GPU, Megatron 96*B*s*l*h^2*(1 + s/6h + V/16lh): recompute counted, attention non-causal",
  "megatron-model": "model TFLOP/s per GPU, every matmul (Narayanan 72*B*s*l*h^2*(1 + s/6h + V/12lh) for a GPT): no recompute, attention non-causal",
  palm: "model TFLOP/s per GPU, PaLM 6N + 12*L*H*Q*T: no recompute, attention non-causal",
};

export function recordMeasurement(
  r: MeasurementRecord, profile: SourceProfile, model: ModelSpec, globalBatch: number, seqLen: number, gpus: number,
): Measurement | undefined {
  const x = r.measured;
  const tokensPerStep = globalBatch * seqLen;
  const base = { tokensPerStep, gpus, flopsPerToken: undefined };
  if (x.iteration_time_s !== null) {
    return { ...base, kind: "iteration-seconds", value: x.iteration_time_s, compares: "seconds per iteration (global batch)", tokensPerSecondPerGpu: tokensPerStep / (x.iteration_time_s * gpus) };
  }
  if (x.tokens_per_sec_per_gpu !== null) {
    return { ...base, kind: "tokens-per-second-per-gpu", value: x.tokens_per_sec_per_gpu, compares: "tokens/s per GPU", tokensPerSecondPerGpu: x.tokens_per_sec_per_gpu };
  }
  if (x.tokens_per_sec_total !== null) {
    const perGpu = x.tokens_per_sec_total / gpus;
    return { ...base, kind: "tokens-per-second-per-gpu", value: perGpu, compares: "tokens/s per GPU (published total / GPUs)", tokensPerSecondPerGpu: perGpu };
  }
  if (x.tflops_per_gpu !== null && profile.tflops !== undefined) {
    const f = flopsPerToken(profile.tflops, model, seqLen);
    return { ...base, kind: "tflops-per-gpu", value: x.tflops_per_gpu, compares: CONVENTION_WORDS[profile.tflops], tokensPerSecondPerGpu: (x.tflops_per_gpu * 1e12) / f, flopsPerToken: f };
  }
  return undefined;
}

/** A throughput in tokens/s per GPU expressed in the measurement's own unit. */
export function inSourceUnits(m: Measurement, tokensPerSecondPerGpu: number): number {
  switch (m.kind) {
    case "iteration-seconds":
      return m.tokensPerStep / (tokensPerSecondPerGpu * m.gpus);
    case "tokens-per-second-per-gpu":
      return tokensPerSecondPerGpu;
    case "tflops-per-gpu":
      return (tokensPerSecondPerGpu * (m.flopsPerToken ?? 0)) / 1e12;
  }
}
