import type { Schedule } from "../spec/types.js";
import { splitsBackward } from "../spec/virtual-stages.js";
import { EQUAL_PASSES, zbvOrder, type VPassRatios } from "../planner/cost/zb-v.js";

import { Pass, type PassCode } from "../spec/passes.js";

export { Pass, type PassCode };

/** The order in which one stage runs its passes: entry k is (pass, micro-batch, chunk). */
export interface StageProgram {
  readonly length: number;
  readonly pass: Uint8Array;
  readonly microBatch: Int32Array;
  readonly chunk: Int32Array;
}

class ProgramWriter {
  length = 0;
  readonly pass: Uint8Array;
  readonly microBatch: Int32Array;
  readonly chunk: Int32Array;
  constructor(size: number) {
    this.pass = new Uint8Array(size);
    this.microBatch = new Int32Array(size);
    this.chunk = new Int32Array(size);
  }
  push(pass: PassCode, mb: number, chunk = 0): void {
    const k = this.length++;
    this.pass[k] = pass;
    this.microBatch[k] = mb;
    this.chunk[k] = chunk;
  }
}

export { splitsBackward };

/**
 * Warm-up forwards of stage i in 1F1B (PipeDream-Flush; Narayanan et al. 2021, section 2.2.1; Megatron-LM
 * schedules.py forward_backward_pipelining_without_interleaving): p - i - 1, at most m.
 */
export function warmupForwards(p: number, i: number, m: number): number {
  return Math.min(p - i - 1, m);
}

/**
 * Warm-up forwards (chunks) of stage i in interleaved 1F1B: 2(p - i - 1) + (v - 1)p, at most m v
 * (Megatron-LM schedules.py forward_backward_pipelining_with_interleaving, microbatch group size p).
 */
export function interleavedWarmup(p: number, i: number, m: number, v: number): number {
  return Math.min(2 * (p - i - 1) + (v - 1) * p, m * v);
}

/**
 * The k-th forward (or backward) chunk of interleaved 1F1B: micro-batches go in groups of p through chunk
 * 0, then 1, ... (backwards through chunk v - 1 first), Megatron-LM's get_model_chunk_id.
 */
function pushInterleaved(w: ProgramWriter, pass: PassCode, k: number, p: number, v: number): void {
  const group = Math.floor(k / (p * v));
  const within = k % (p * v);
  const c = Math.floor(within / p);
  w.push(pass, group * p + (within % p), pass === Pass.backward ? v - 1 - c : c);
}

function program(schedule: Schedule, p: number, i: number, m: number, v: number, ratios: VPassRatios): StageProgram {
  if (schedule === "zb-v") {
    const prog = zbvOrder(p, m, ratios).programs[i]!;
    return { length: prog.pass.length, pass: prog.pass, microBatch: prog.microBatch, chunk: prog.chunk };
  }
  const w = new ProgramWriter(m * v * (splitsBackward(schedule) ? 3 : 2));
  switch (schedule) {
    case "naive": // one micro-batch in flight: forward through all stages, backward, then the next
      for (let j = 0; j < m; j++) {
        w.push(Pass.forward, j);
        w.push(Pass.backward, j);
      }
      break;
    case "gpipe": // all forwards, then the backwards in reverse, as autograd runs them (Huang et al. 2019)
      for (let j = 0; j < m; j++) w.push(Pass.forward, j);
      for (let j = m - 1; j >= 0; j--) w.push(Pass.backward, j);
      break;
    case "1f1b": {
      const warm = warmupForwards(p, i, m);
      for (let j = 0; j < warm; j++) w.push(Pass.forward, j);
      for (let k = 0; k < m - warm; k++) {
        w.push(Pass.forward, warm + k);
        w.push(Pass.backward, k);
      }
      for (let j = m - warm; j < m; j++) w.push(Pass.backward, j);
      break;
    }
    case "zb-h1":
      zeroBubbleH1(w, p, i, m);
      break;
    case "interleaved": {
      const total = m * v;
      const warm = interleavedWarmup(p, i, m, v);
      for (let k = 0; k < warm; k++) pushInterleaved(w, Pass.forward, k, p, v);
      for (let k = 0; k < total - warm; k++) {
        pushInterleaved(w, Pass.forward, warm + k, p, v);
        pushInterleaved(w, Pass.backward, k, p, v);
      }
      for (let k = total - warm; k < total; k++) pushInterleaved(w, Pass.backward, k, p, v);
      break;
    }
  }
  return { length: w.length, pass: w.pass, microBatch: w.microBatch, chunk: w.chunk };
}

/**
 * ZB-H1 (Qi et al. 2023, section 3.1, Figure 3): 1F1B's order of forwards and input-gradient passes B,
 * with each weight-gradient pass W deferred while stage i has at most i of them pending, so the later
 * stages (which wait longest for gradients in 1F1B) keep W work to fill what would be the cool-down
 * bubble, and B travels back through the pipeline without waiting for W. Peak activations on every stage
 * stay at or below stage 0's p micro-batches, 1F1B's peak (a micro-batch's activations are held until
 * its W). The same order as Megatron-DeepSpeed's ZB-H1 (W delayed by the pipeline rank).
 */
function zeroBubbleH1(w: ProgramWriter, p: number, i: number, m: number): void {
  const warm = warmupForwards(p, i, m);
  const pendingW: number[] = [];
  const backward = (j: number) => {
    w.push(Pass.backward, j);
    pendingW.push(j);
    while (pendingW.length > i) w.push(Pass.weight, pendingW.shift()!);
  };
  for (let j = 0; j < warm; j++) w.push(Pass.forward, j);
  for (let k = 0; k < m - warm; k++) {
    w.push(Pass.forward, warm + k);
    backward(k);
  }
  for (let j = m - warm; j < m; j++) backward(j);
  while (pendingW.length > 0) w.push(Pass.weight, pendingW.shift()!);
}

/**
 * Each stage's program for p stages, m micro-batches and v chunks per stage (v = 1 except interleaved and
 * ZB-V); ZB-V's order is found for the pass lengths `ratios` (planner/cost/zb-v.ts).
 */
export function stagePrograms(schedule: Schedule, p: number, m: number, v: number, ratios: VPassRatios = EQUAL_PASSES): StageProgram[] {
  const out: StageProgram[] = [];
  for (let i = 0; i < p; i++) out.push(program(schedule, p, i, m, v, ratios));
  return out;
}
