import { peakFlops } from "../planner/cost/compute.js";
import { stepFlops } from "../planner/cost/flops.js";
import type { PreparedCase } from "./predict.js";
import { median } from "./stats.js";

/**
 * The simplest baseline beside the cost model: one MFU constant per GPU type (and precision, since fp8
 * doubles the peak), fitted as the median measured MFU of the training records of that type; a type with
 * no training record gets the median over all training records. Predicted throughput is
 * MFU * peak / (model FLOPs per token), model FLOPs counted as meshplan counts them (every matmul, no
 * recompute: src/planner/cost/flops.ts), the same count on both sides.
 */
export interface MfuBaseline {
  readonly byType: Readonly<Record<string, number>>;
  readonly pooled: number;
}

export function baselineType(p: PreparedCase): string {
  return `${p.shape.spec.gpu.name}${p.plan.precision === "fp8" ? " fp8" : ""}`;
}

function modelFlopsPerToken(p: PreparedCase): number {
  return stepFlops(p.case.model, p.plan).modelFlops / (p.plan.globalBatch * p.plan.seqLen);
}

/** The MFU a record measured, in meshplan's model-FLOP count on the plan precision's dense peak. */
export function measuredMfu(p: PreparedCase): number | undefined {
  const m = p.case.measurement;
  if (m === undefined || !p.case.ran) return undefined;
  return (m.tokensPerSecondPerGpu * modelFlopsPerToken(p)) / peakFlops(p.shape.spec.gpu, p.plan);
}

export function fitBaseline(train: readonly PreparedCase[]): MfuBaseline {
  const byTypeLists = new Map<string, number[]>();
  const all: number[] = [];
  for (const p of train) {
    const mfu = measuredMfu(p);
    if (mfu === undefined) continue;
    all.push(mfu);
    const key = baselineType(p);
    byTypeLists.set(key, [...(byTypeLists.get(key) ?? []), mfu]);
  }
  const byType: Record<string, number> = {};
  for (const [k, list] of byTypeLists) byType[k] = median([...list].sort((a, b) => a - b));
  return { byType, pooled: median(all.sort((a, b) => a - b)) };
}

/** The baseline's throughput for a case, in tokens/s per GPU. */
export function baselineTokensPerSecondPerGpu(b: MfuBaseline, p: PreparedCase): number {
  const mfu = b.byType[baselineType(p)] ?? b.pooled;
  return (mfu * peakFlops(p.shape.spec.gpu, p.plan)) / modelFlopsPerToken(p);
}
