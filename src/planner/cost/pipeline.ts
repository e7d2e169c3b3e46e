import type { Plan } from "../../spec/types.js";
import { crossingBoundaries } from "../../spec/virtual-stages.js";
import { EQUAL_PASSES, vFillLength, vWorkLength, zbvOrder, type VPassRatios } from "./zb-v.js";

/** One stage's time for one micro-batch, split as the zero-bubble schedules need it. */
export interface StageTime {
  /** Forward, backward and recomputation together, with the exposed tp/cp/ep communication inside them. */
  readonly totalSeconds: number;
  /** The weight-gradient part (W of Qi et al. 2023). */
  readonly weightGradSeconds: number;
  /**
   * What the stage adds to the fill and drain chain when it is not the critical one: totalSeconds without
   * its blocking transfers (plan.ppBlockingSends), since the chain's own transfers, one per hop each way,
   * are counted once by ppCriticalTransfers. Absent: totalSeconds.
   */
  readonly chainSeconds?: number;
}

/**
 * Wall time of the pipelined part of a step for m micro-batches over p stages, analytically:
 * - GPipe and 1F1B: (m - 1) * T_max + sum_i T_i; uniform stages give (m + p - 1) T, idle share (p-1)/(m+p-1)
 *   (Huang et al. 2019; Narayanan et al. 2021, section 2.2.1).
 * - Interleaved with v chunks: m T_max + (sum_i T_i - T_max) / v; uniform: bubble (p-1)T/v, which is
 *   (p-1)/(v m) of the ideal m T (Narayanan et al. 2021, section 2.2.2).
 * - ZB-H1: m T_max + sum over the other stages of (F + B - W); uniform: bubble (p-1)(F + B - W)
 *   (Qi et al. 2023, section 3.1, Table 1).
 * - ZB-V: the same over chunks of half a stage, m T_max + sum over the other stages of (F + B - W) / 2;
 *   with F = B = W per chunk that is (p - 1) chunk forwards, the last stage's wait for the first
 *   micro-batch, which the order reaches on m >= p (zb-v.ts); plus what the order loses beyond that when
 *   B is much longer than F (vOrderExcess), so that uniform stages take exactly the order's play.
 * - Naive model parallel: one micro-batch in flight, each traverses every stage: m * sum_i T_i.
 * In the fill and drain terms a stage other than the critical one counts its chainSeconds where given.
 * The event simulator derives these from the schedule itself; these formulas are its tests.
 */
export function pipelineSeconds(plan: Plan, stages: readonly StageTime[], microBatches: number, vRatios: VPassRatios = EQUAL_PASSES): { seconds: number; critical: number } {
  const m = microBatches;
  let critical = 0;
  let sum = 0;
  for (let i = 0; i < stages.length; i++) {
    const t = stages[i]!.totalSeconds;
    sum += t;
    if (t > stages[critical]!.totalSeconds) critical = i;
  }
  const tMax = stages[critical]!.totalSeconds;
  // The other stages' share of the fill and drain.
  let others = 0;
  stages.forEach((s, i) => {
    if (i !== critical) others += s.chainSeconds ?? s.totalSeconds;
  });
  switch (plan.schedule) {
    case "naive":
      return { seconds: m * sum, critical };
    case "gpipe":
    case "1f1b":
      return { seconds: m * tMax + others, critical };
    case "interleaved":
      return { seconds: m * tMax + others / plan.virtualStages, critical };
    case "zb-h1":
    case "zb-v": {
      // ZB-V's chunks are half a stage: its fill is half of ZB-H1's.
      const share = plan.schedule === "zb-v" ? 1 / plan.virtualStages : 1;
      let fill = 0;
      stages.forEach((s, i) => {
        if (i !== critical) fill += (s.chainSeconds ?? s.totalSeconds) - 2 * s.weightGradSeconds;
      });
      const seconds = m * tMax + Math.max(0, share * fill);
      if (plan.schedule === "zb-h1") return { seconds, critical };
      return { seconds: Math.max(m * tMax, seconds + m * tMax * vOrderExcess(plan.pp, m, vRatios)), critical };
    }
  }
}

/**
 * What ZB-V's order loses beyond its fill, as a share of the work: its play with equal stages ends at
 * playLength (in chunk forwards), the work takes 2m(1 + b + w) and the fill (p - 1)(1 + b - w); the rest is
 * where the greedy order leaves gaps (B much longer than F), which uniform stages show in full. With it,
 * pipelineSeconds gives the play's own length for uniform stages.
 */
function vOrderExcess(p: number, m: number, r: VPassRatios): number {
  const work = vWorkLength(m, r);
  return (zbvOrder(p, m, r).playLength - work - vFillLength(p, r)) / work;
}

/** Transfers of one activation on the critical path: the fill and drain chains, or every hop for naive. */
export function ppCriticalTransfers(plan: Plan, microBatches: number): number {
  if (plan.pp <= 1) return 0;
  if (plan.schedule === "naive") return 2 * microBatches * (plan.pp - 1);
  return 2 * crossingBoundaries(plan);
}
