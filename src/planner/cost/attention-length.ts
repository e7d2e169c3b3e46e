import type { MeasuredAttention } from "../../spec/types.js";
import { bracket } from "./gemm-grid.js";

/**
 * How a fused causal attention kernel's throughput depends on the key length it runs over, relative to
 * the long-sequence, unmasked rate that each GPU's `efficiency.attentionMax` prior is (models/hardware/gpus).
 *
 * Source: Shah et al. 2024, "FlashAttention-3" (arXiv:2407.08608), the forward-speed benchmark figure for
 * H100 80GB SXM5, BF16, head dimension 128, 16k tokens per batch. TFLOP/s (counted with the causal mask's
 * halving) at sequence lengths 512, 1k, 2k, 4k, 8k, 16k:
 *   FlashAttention-2, causal        191 260 298 319 333 335
 *   FlashAttention-2, no mask       309 350 362 368 370 370
 *   FlashAttention-3, causal        292 423 521 579 602 616
 *   FlashAttention-3, no mask        -  565 625 638 646 648   (512: the label is ambiguous)
 * Each row divided by its kernel's unmasked 16k rate:
 *   FlashAttention-2   causal 0.516 0.703 0.805 0.862 0.900 0.905   no mask 0.835 0.946 0.978 0.995 1 1
 *   FlashAttention-3   causal 0.451 0.653 0.804 0.894 0.929 0.951   no mask   -   0.872 0.965 0.985 0.997 1
 * The two kernels' curves agree within 0.08, so one curve, their mean, serves every kernel and GPU (an
 * assumption for other GPUs and kernels: the shape comes from the work per query block, the diagonal
 * blocks the mask leaves half-empty, and the per-block prologue and epilogue, which all tiled kernels share).
 * The figure has no causal backward; the backward is assumed to follow the forward's curve.
 * Short rows cost more per FLOP because each query block's fixed work is spread over fewer key blocks.
 */
const LENGTHS = [512, 1024, 2048, 4096, 8192, 16384] as const;
const FA2 = { causal: [191, 260, 298, 319, 333, 335], unmaskedLong: 370 } as const;
const FA3 = { causal: [292, 423, 521, 579, 602, 616], unmaskedLong: 648 } as const;
/** A curve over log2 of the key length. */
interface LengthCurve {
  readonly log2Lengths: readonly number[];
  readonly values: readonly number[];
}

/** Each kernel's causal rate over its own unmasked 16k rate; the two kernels' mean. */
const PUBLISHED: LengthCurve = {
  log2Lengths: LENGTHS.map(Math.log2),
  values: LENGTHS.map((_, i) => (FA2.causal[i]! / FA2.unmaskedLong + FA3.causal[i]! / FA3.unmaskedLong) / 2),
};

/** Linear in log2(length) between points, held flat outside them (gemm-grid.ts's bracket). */
function interpolate(c: LengthCurve, length: number): number {
  const [i, t] = bracket(c.log2Lengths, Math.log2(length));
  return t === 0 ? c.values[i]! : c.values[i]! + t * (c.values[i + 1]! - c.values[i]!);
}

const measuredCurves = new WeakMap<MeasuredAttention, LengthCurve>();

/** A measured kernel's causal rate at each length over its unmasked rate at its longest length. */
function measuredCurve(m: MeasuredAttention): LengthCurve {
  let curve = measuredCurves.get(m);
  if (curve === undefined) {
    const top = m.unmaskedFlopsPerSecond[m.unmaskedFlopsPerSecond.length - 1]!;
    measuredCurves.set(m, (curve = { log2Lengths: m.lengths.map(Math.log2), values: m.causalFlopsPerSecond.map((r) => r / top) }));
  }
  return curve;
}

/**
 * The fraction of `attentionMax` a causal fused attention reaches for one rank's queries, linear in
 * log2(length) between the points and held flat outside them (512..16k published, the measured kernel's own lengths). With context parallelism each
 * ring step runs over chunks of seqLen/cp keys and the curve is read at that length. Only the diagonal
 * step is masked; the others run unmasked, faster per FLOP (up to 1 / 0.93 at 16k), but each step's
 * partial output and softmax statistics are then merged into the running result, element-wise work that
 * the cost model does not charge: the two are taken to cancel, so context parallelism never makes
 * attention faster per FLOP here, only slower when its chunks are short.
 *
 * A GPU with a measured kernel (GpuSpec.measured.attention, models/hardware/measured) uses that kernel's
 * own curve instead, forward plus backward as measured: its causal rate at each length over its unmasked
 * rate at the longest length measured, the rate that the GPU's attentionMax stands for.
 */
export function attentionLengthFactor(seqLen: number, cp: number, measured?: MeasuredAttention): number {
  if (!(seqLen > 0) || !(cp >= 1)) throw new Error(`internal: attention over ${seqLen} tokens and cp ${cp}`);
  return interpolate(measured === undefined ? PUBLISHED : measuredCurve(measured), seqLen / cp);
}
