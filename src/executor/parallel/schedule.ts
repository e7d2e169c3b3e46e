import { stagePrograms } from "../../simulator/schedules.js";
import { planVPassRatios } from "../../planner/cost/zb-v.js";
import type { ModelSpec, Plan } from "../../spec/types.js";

/**
 * The order in which one pipeline stage runs forward (F) and backward (B) passes of (micro-batch, model
 * chunk) pairs in a step. Data dependencies do the rest: a stage waits for its input or its output
 * gradient to arrive.
 * - naive model parallelism: F0 B0 F1 B1 ..., one micro-batch in the whole pipeline at a time.
 * - GPipe (Huang et al. 2019): every forward, then every backward.
 * - 1F1B (Narayanan et al. 2021, PipeDream-Flush, section 2.2.1): p - i - 1 warm-up forwards on stage i,
 *   then one forward and one backward in turn, then the remaining backwards.
 * - Interleaved 1F1B (Narayanan et al. 2021, section 2.2.2; Megatron-LM
 *   forward_backward_pipelining_with_interleaving): v chunks per stage, 2(p - i - 1) + (v - 1)p warm-up
 *   forwards, in groups of p micro-batches per chunk.
 * - ZB-H1 (Qi et al. 2023, section 3.1): 1F1B's forwards and input-gradient passes B, each weight-gradient
 *   pass W deferred while stage i has at most i pending.
 * - ZB-V (Qi et al. 2023, the V-shaped schedule): two chunks per stage laid out as a V (spec/virtual-stages.ts),
 *   in the order the cost model plays for the plan's pass lengths (planner/cost/zb-v.ts).
 */
export interface Action {
  /** Forward, backward (input gradients; with the weight gradients unless the schedule splits them), weight gradients (ZB-H1's W). */
  readonly pass: "F" | "B" | "W";
  readonly microBatch: number;
  readonly chunk: number;
}

/** Forward order of virtual micro-batch k under interleaving: chunk and micro-batch (Megatron's get_model_chunk_id). */
function interleavedAt(k: number, p: number, v: number, backward: boolean): { chunk: number; microBatch: number } {
  const inGroup = k % (p * v);
  const chunk = Math.floor(inGroup / p);
  return { chunk: backward ? v - 1 - chunk : chunk, microBatch: Math.floor(k / (p * v)) * p + (k % p) };
}

function oneFOneB(total: number, warmup: number, f: (k: number) => Action, b: (k: number) => Action): Action[] {
  const out: Action[] = [];
  const w = Math.min(warmup, total);
  for (let k = 0; k < w; k++) out.push(f(k));
  for (let k = 0; k < total - w; k++) out.push(f(w + k), b(k));
  for (let k = total - w; k < total; k++) out.push(b(k));
  return out;
}

export function stageSchedule(model: ModelSpec, plan: Plan, stage: number, microBatches: number): Action[] {
  const m = microBatches;
  const p = plan.pp;
  const F = (microBatch: number, chunk = 0): Action => ({ pass: "F", microBatch, chunk });
  const B = (microBatch: number, chunk = 0): Action => ({ pass: "B", microBatch, chunk });
  switch (plan.schedule) {
    case "naive":
      return Array.from({ length: m }, (_, k) => [F(k), B(k)]).flat();
    case "gpipe":
      return [...Array.from({ length: m }, (_, k) => F(k)), ...Array.from({ length: m }, (_, k) => B(k))];
    case "1f1b":
      return oneFOneB(m, p - stage - 1, (k) => F(k), (k) => B(k));
    case "interleaved": {
      const v = plan.virtualStages;
      if (m % p !== 0) throw new Error(`internal: interleaved schedule needs micro-batches (${m}) divisible by pp (${p})`);
      const at = (k: number, backward: boolean) => {
        const x = interleavedAt(k, p, v, backward);
        return backward ? B(x.microBatch, x.chunk) : F(x.microBatch, x.chunk);
      };
      return oneFOneB(m * v, 2 * (p - stage - 1) + (v - 1) * p, (k) => at(k, false), (k) => at(k, true));
    }
    case "zb-h1":
    case "zb-v": {
      // The simulator's order (simulator/schedules.ts; ZB-V's from the pass lengths the prediction plays,
      // planner/cost/zb-v.ts), so that prediction and run agree pass by pass.
      const prog = stagePrograms(plan.schedule, p, m, plan.virtualStages, plan.schedule === "zb-v" ? planVPassRatios(model, plan) : undefined)[stage]!;
      const name = ["F", "B", "W"] as const;
      return Array.from({ length: prog.length }, (_, k) => ({ pass: name[prog.pass[k]!]!, microBatch: prog.microBatch[k]!, chunk: prog.chunk[k]! }));
    }
  }
}

/** Most (micro-batch, chunk) activations a stage holds at once under its schedule, in chunks. */
export function peakInFlightChunks(actions: readonly Action[]): number {
  // A split backward (ZB-H1) frees a chunk's activations at its W, not at its B.
  const split = actions.some((a) => a.pass === "W");
  let live = 0;
  let peak = 0;
  for (const a of actions) {
    live += a.pass === "F" ? 1 : a.pass === "W" || !split ? -1 : 0;
    peak = Math.max(peak, live);
  }
  return peak;
}
