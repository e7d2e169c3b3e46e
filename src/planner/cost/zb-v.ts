import { Pass } from "../../spec/passes.js";
import type { ModelSpec, Plan, VPassRatios } from "../../spec/types.js";
import { forwardFlopsPerToken, layerForwardFlopsPerToken } from "./flops.js";

/**
 * The order in which each stage runs its passes under ZB-V (Qi et al. 2023, "Zero Bubble Pipeline
 * Parallelism", the V-shaped schedule of its repository, sail-sg/zero-bubble-pipeline-parallelism): two
 * chunks per stage laid out as a V (spec/virtual-stages.ts), the backward split into B (input gradient)
 * and W (weight gradient), and at most 2p chunks' activations held on any stage (the repository's memory
 * limit, f_mem * 2 * n_stage: one micro-batch through p whole stages, 1F1B's peak on its first stage).
 *
 * The order is found once per (p, m, pass lengths) by playing the schedule with each pass taking its
 * length (a chunk's B and W in units of its forward: VPassRatios; the cost model takes them from the
 * layer's FLOPs) and transfers none, greedily: whenever a stage is free, in this order of preference:
 *   1. a B whose inputs are there (the earliest micro-batch; its second chunk first, which is earlier on
 *      the backward's way);
 *   2. a forward, while the stage holds fewer than 2p chunks' activations (the second chunk first, which
 *      finishes a micro-batch's forward);
 *   3. the oldest deferred W (it fills what would be idle, and frees its chunk's activations);
 * and again with a forward preferred right after a B (a steady one-B-one-F rhythm), keeping the shorter.
 * Where the limit closes a cycle (every stage idle, nothing ready: seen with 2 stages, 6 micro-batches and
 * B = 2.25F) one forward runs past it; the memory read off the play counts it.
 * With F = B = W it ends p - 1 units after the ideal 6m on m >= p micro-batches for p of 2, 3, 4 and 8
 * (the last stage's unavoidable wait for the first micro-batch), and at most ceil(p/4) units later than that
 * for other p up to 16, whatever m (tested): the paper's "zero bubble" up to that fill.
 * Deterministic: the simulator then plays the order with each pass's real duration and transfers, and the
 * cost model reads its memory off it. (An order found with equal lengths and played with B twice F ran up
 * to 65% past the ideal, slower than 1F1B: the order has to fit the passes' shape.)
 */

const { forward: FORWARD, backward: BACKWARD, weight: WEIGHT } = Pass;

/**
 * What a stage holds at a moment its memory may peak, counted as the simulator's memory log counts it
 * (src/simulator/build-pipeline.ts): chunks whose activations it holds (from a forward's start to its W's
 * end), chunks whose weight-gradient inputs it holds (from a B's end to its W's end), micro-batches whose
 * logits it holds (the loss chunk's forward start to its B's end) and whether a backward's transient is
 * there (during a B). The moments: right after a forward or a B starts, right after a B ends.
 */
export interface VPeak {
  readonly heldChunks: number;
  readonly pendingChunks: number;
  readonly logits: number;
  readonly inBackward: boolean;
  /** The moment right after a B ends (ZB's backward-end branch); otherwise a pass has just started. */
  readonly afterBackward: boolean;
}

export interface VOrder {
  /** Per stage, its passes in order: pass code, micro-batch, chunk. */
  readonly programs: readonly { readonly pass: Uint8Array; readonly microBatch: Int32Array; readonly chunk: Int32Array }[];
  /** When the play ends, in forward lengths (6m + p - 1 with equal passes when the fill is the only idle time). */
  readonly playLength: number;
  /** Per stage: most chunks whose activations it held at once (a forward's start until its W's end). */
  readonly heldChunks: Int32Array;
  /** Per stage: the moments no other moment holds as much of everything (the memory's candidate peaks). */
  readonly peaks: readonly (readonly VPeak[])[];
}

/** Chunks' activations a stage may hold under ZB-V, in chunks: 2p (the repository's max_mem). */
export function vHeldLimit(p: number): number {
  return 2 * p;
}

/**
 * The lengths of a chunk's B and W in units of its forward, which shape the order: the play runs each
 * pass for its length. Rounded to quarters (and kept within 1/4 to 8) so that plans of about the same shape
 * share one order.
 */
export type { VPassRatios };

export const EQUAL_PASSES: VPassRatios = { backward: 1, weight: 1 };

/**
 * A plan's pass lengths: the ones it gives (Plan.vPassRatios: pinned, or priced on its GPU by
 * compute.ts withPricedVPasses, which the search, simulate and execute apply), else from one layer's FLOPs
 * per token (flops.ts): the forward; B, the input gradients
 * (the linear layers once, the attention core twice: the gradients of both its products) plus what the
 * plan's recompute mode runs again (full: the forward; selective without flash attention: the core); W,
 * the linear layers' weight gradients. From the recompute mode, not per-stage counts, so that every
 * layout of a plan shares one order.
 */
export function planVPassRatios(model: ModelSpec, plan: Plan): VPassRatios {
  if (plan.vPassRatios !== undefined) return plan.vPassRatios;
  const f = forwardFlopsPerToken(model, plan.seqLen);
  const linear = f.attentionLinear + f.mlp;
  const forward = layerForwardFlopsPerToken(f);
  const recompute = plan.recompute === "full" ? forward : plan.recompute === "selective" && !plan.flashAttention ? f.attentionCore : 0;
  return vPassRatios(forward, linear + 2 * f.attentionCore + recompute, linear);
}

export function vPassRatios(forward: number, backward: number, weight: number): VPassRatios {
  const quarter = (x: number) => clampQuarter(Math.round((4 * x) / forward) / 4);
  return forward > 0 ? { backward: quarter(backward), weight: quarter(weight) } : EQUAL_PASSES;
}

function clampQuarter(x: number): number {
  return Math.min(8, Math.max(0.25, x));
}

const fittedCache = new Map<string, VPassRatios>();

/**
 * The lengths to find p stages' order for, m micro-batches, passes of the given real durations: of the
 * quarters just below and just above each real ratio (B / F, W / F; the nearest alone where the ratio is
 * within 1/16 of it), the pair whose order, replayed with
 * the real lengths (replayLength), ends soonest; on a tie the nearest rounding (vPassRatios). The nearest
 * quarter alone can pick an order that idles: the executor's W at 0.36 of its forward, rounded to 0.25,
 * ran tiny-gpt with 4 layers on 2 stages (8 micro-batches) with a measured bubble of 0.10-0.21, the order
 * for 0.5 with 0.055-0.133 (src/executor/TIME-RECORD.md, "How a layer's time splits between its passes"). Cached by (p, m, ratios to 1/32).
 */
export function fittedVPassRatios(p: number, m: number, forward: number, backward: number, weight: number): VPassRatios {
  if (!(forward > 0)) return EQUAL_PASSES;
  // The real ratios to 1/32 of a forward: finer than the quarters compared, coarse enough for the cache.
  const b = Math.round((32 * backward) / forward) / 32;
  const w = Math.round((32 * weight) / forward) / 32;
  const key = `${p},${m},${b},${w}`;
  const hit = fittedCache.get(key);
  if (hit !== undefined) return hit;
  const nearest = vPassRatios(1, b, w);
  // The other quarter of a ratio is tried only where the ratio lies more than 1/16 from its nearest one
  // (each try plays an order; a search prices thousands of ZB-V plans).
  const around = (x: number) => {
    const q = clampQuarter(Math.round(4 * x) / 4);
    return Math.abs(x - q) <= 1 / 16 ? [q] : [...new Set([clampQuarter(Math.floor(4 * x) / 4), clampQuarter(Math.ceil(4 * x) / 4)])];
  };
  const real = [1, b, w];
  let best = nearest;
  let bestLength = replayLength(zbvOrder(p, m, nearest).programs, p, m, real);
  for (const backwardQuarter of around(b)) {
    for (const weightQuarter of around(w)) {
      if (backwardQuarter === nearest.backward && weightQuarter === nearest.weight) continue; // replayed above
      const r = { backward: backwardQuarter, weight: weightQuarter };
      const length = replayLength(zbvOrder(p, m, r).programs, p, m, real);
      if (length < bestLength - 1e-9) [best, bestLength] = [r, length];
    }
  }
  if (fittedCache.size >= CACHE_ENTRIES) fittedCache.delete(fittedCache.keys().next().value!);
  fittedCache.set(key, best);
  return best;
}

/** The work of m micro-batches on one stage, in chunk forwards: two chunks, each F + B + W. */
export function vWorkLength(m: number, r: VPassRatios): number {
  return 2 * m * (1 + r.backward + r.weight);
}

/** The fill the cost model charges ZB-V with uniform stages, in chunk forwards: (p - 1)(F + B - W), at least 0 (pipeline.ts). */
export function vFillLength(p: number, r: VPassRatios): number {
  return Math.max(0, (p - 1) * (1 + r.backward - r.weight));
}

const cache = new Map<string, VOrder>();
const CACHE_ENTRIES = 256;

/** ZB-V's order for p stages and m micro-batches, passes of the given lengths (cached). */
export function zbvOrder(p: number, m: number, ratios: VPassRatios = EQUAL_PASSES): VOrder {
  const key = `${p},${m},${ratios.backward},${ratios.weight}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  // Two orders of preference, the shorter play kept (ties: the first), as the repository's create_schedule
  // tries its variants: B first always, or after a B a forward first (the steady one-B-one-F rhythm).
  // The second is played only where the first leaves time beyond the work and its fill (B much longer than F).
  const first = playV(p, m, ratios, false);
  const second = first.playLength > vWorkLength(m, ratios) + vFillLength(p, ratios) ? playV(p, m, ratios, true) : first;
  const order = second.playLength < first.playLength ? second : first;
  if (cache.size >= CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  cache.set(key, order);
  return order;
}

function playV(p: number, m: number, ratios: VPassRatios, alternate: boolean): VOrder {
  const limit = vHeldLimit(p);
  const length = [1, ratios.backward, ratios.weight];
  // End time of pass (kind, chunk, stage, micro-batch); -1 until it has run.
  const ends = new Float64Array(3 * 2 * p * m).fill(-1);
  const at = (kind: number, chunk: number, stage: number, mb: number) => ((kind * 2 + chunk) * p + stage) * m + mb;
  const doneBy = (kind: number, chunk: number, stage: number, mb: number, t: number) => {
    const e = ends[at(kind, chunk, stage, mb)]!;
    return e >= 0 && e <= t;
  };
  // Next micro-batch of each (stage, chunk): index 2s + c.
  const nextForward = new Int32Array(2 * p);
  const nextBackward = new Int32Array(2 * p);
  // Each stage's deferred Ws, oldest first: a queue of 2m slots (chunk, micro-batch) per stage.
  const slots = 2 * m;
  const pendingChunk = new Int32Array(p * slots);
  const pendingMb = new Int32Array(p * slots);
  const pendingHead = new Int32Array(p);
  const pendingCount = new Int32Array(p);
  const held = new Int32Array(p);
  const heldChunks = new Int32Array(p);
  const logits = new Int32Array(p);
  const busyUntil = new Float64Array(p);
  const lastPass = new Int32Array(p).fill(-1);
  // Candidate peaks as numbers: ((held * (6m + 1) + pending) * (m + 1) + logits) * 4 + flags.
  const moments = Array.from({ length: p }, () => new Set<number>());
  const note = (s: number, inBackward: boolean, afterBackward: boolean) => {
    moments[s]!.add(((held[s]! * (6 * m + 1) + pendingCount[s]!) * (m + 1) + logits[s]!) * 4 + (inBackward ? 1 : 0) + (afterBackward ? 2 : 0));
  };
  // The loss ends the model's last chunk: the first stage's second (the V's end).
  const lossChunk = (s: number, c: number) => s === 0 && c === 1;
  const size = 6 * m;
  const programs = Array.from({ length: p }, () => ({ pass: new Uint8Array(size), microBatch: new Int32Array(size), chunk: new Int32Array(size), length: 0 }));

  // Inputs of a B: its forward, and the gradient from the next virtual stage (the loss on the first stage's chunk 1).
  const backwardReady = (s: number, c: number, j: number, t: number) => {
    if (!doneBy(FORWARD, c, s, j, t)) return false;
    if (c === 1) return s === 0 || doneBy(BACKWARD, 1, s - 1, j, t);
    return s === p - 1 ? doneBy(BACKWARD, 1, s, j, t) : doneBy(BACKWARD, 0, s + 1, j, t);
  };
  const forwardReady = (s: number, c: number, j: number, t: number) => {
    if (c === 0) return s === 0 || doneBy(FORWARD, 0, s - 1, j, t);
    return s === p - 1 ? doneBy(FORWARD, 0, s, j, t) : doneBy(FORWARD, 1, s + 1, j, t);
  };

  let remaining = 6 * p * m;
  let t = 0;
  // Stages to look at, at time t: at the start all; later a stage whose pass ended and its two neighbours,
  // the only ones a pass's end can give an input (or free capacity) to. Every pass's end is in `events`.
  let wake = Array.from({ length: p }, (_, s) => s);
  const events = new EndQueue();
  let relaxed = false;
  const woken = new Uint8Array(p);
  while (remaining > 0) {
    for (const s of wake) {
      if (busyUntil[s]! > t) continue;
      let kind = -1;
      let chunk = 0;
      let mb = 0;
      // A B: the earliest micro-batch, its second chunk first on a tie.
      const pickBackward = () => {
        if (kind >= 0) return;
        const j1 = nextBackward[2 * s + 1]!;
        const j0 = nextBackward[2 * s]!;
        if (j1 < m && backwardReady(s, 1, j1, t)) [kind, chunk, mb] = [BACKWARD, 1, j1];
        if (j0 < m && (kind < 0 || j0 < mb) && backwardReady(s, 0, j0, t)) [kind, chunk, mb] = [BACKWARD, 0, j0];
      };
      // A forward under the cap: the second chunk first.
      const pickForward = () => {
        if (kind >= 0 || (held[s]! >= limit && !relaxed)) return;
        const j1 = nextForward[2 * s + 1]!;
        const j0 = nextForward[2 * s]!;
        if (j1 < m && forwardReady(s, 1, j1, t)) [kind, chunk, mb] = [FORWARD, 1, j1];
        else if (j0 < m && forwardReady(s, 0, j0, t)) [kind, chunk, mb] = [FORWARD, 0, j0];
      };
      if (alternate && lastPass[s] === BACKWARD) pickForward();
      pickBackward();
      pickForward();
      if (kind < 0 && pendingCount[s]! > 0) {
        const k = s * slots + pendingHead[s]!;
        [kind, chunk, mb] = [WEIGHT, pendingChunk[k]!, pendingMb[k]!];
        pendingHead[s] = (pendingHead[s]! + 1) % slots;
        pendingCount[s]!--;
      }
      if (kind < 0) continue;
      relaxed = false;
      if (kind !== WEIGHT) lastPass[s] = kind;
      if (kind === FORWARD) {
        nextForward[2 * s + chunk]!++;
        held[s]!++;
        if (lossChunk(s, chunk)) logits[s]!++;
        heldChunks[s] = Math.max(heldChunks[s]!, held[s]!);
        note(s, false, false);
      } else if (kind === BACKWARD) {
        note(s, true, false);
        nextBackward[2 * s + chunk]!++;
        const k = s * slots + ((pendingHead[s]! + pendingCount[s]!) % slots);
        pendingChunk[k] = chunk;
        pendingMb[k] = mb;
        pendingCount[s]!++;
        if (lossChunk(s, chunk)) logits[s]!--;
        note(s, false, true);
      } else {
        held[s]!--;
      }
      const end = t + length[kind]!;
      ends[at(kind, chunk, s, mb)] = end;
      busyUntil[s] = end;
      events.push(end, s);
      const prog = programs[s]!;
      prog.pass[prog.length] = kind;
      prog.microBatch[prog.length] = mb;
      prog.chunk[prog.length] = chunk;
      prog.length++;
      remaining--;
    }
    if (remaining === 0) break;
    // On to the next end of a pass; a stage that found nothing ready waits for one.
    if (events.size === 0) {
      // Every stage idle and nothing ready: the held-chunk limit has closed a cycle (a stage full of first
      // chunks waits for second chunks that need room on it). One forward past the limit, on the first
      // stage that has one ready, breaks it; the memory read off the play counts it.
      if (relaxed) throw new Error(`internal: the ZB-V order for pp ${p}, ${m} micro-batches stalls at ${t}`);
      relaxed = true;
      wake = Array.from({ length: p }, (_, s) => s);
      continue;
    }
    t = events.peekTime();
    woken.fill(0);
    while (events.size > 0 && events.peekTime() === t) {
      const s = events.pop();
      if (s > 0) woken[s - 1] = 1;
      woken[s] = 1;
      if (s + 1 < p) woken[s + 1] = 1;
    }
    // In stage order, as a scan of every stage would meet them.
    wake = [];
    for (let s = 0; s < p; s++) if (woken[s] === 1) wake.push(s);
  }
  const size1 = 6 * m + 1;
  const peaks = moments.map((keys) => undominated([...keys].map((k): VPeak => {
    const flags = k % 4;
    const rest = (k - flags) / 4;
    const logitsHeld = rest % (m + 1);
    const pair = (rest - logitsHeld) / (m + 1);
    return { heldChunks: Math.floor(pair / size1), pendingChunks: pair % size1, logits: logitsHeld, inBackward: (flags & 1) === 1, afterBackward: (flags & 2) === 2 };
  })));
  return {
    programs: programs.map((prog) => ({ pass: prog.pass, microBatch: prog.microBatch, chunk: prog.chunk })),
    playLength: replayLength(programs, p, m, length),
    heldChunks,
    peaks,
  };
}

/**
 * How long the order takes when each pass starts as soon as its stage is free and its inputs are there
 * (what the simulator does with uniform stages and free transfers). The greedy play's own clock can be
 * longer: where the held-chunk limit closed a cycle, it lets the forward past the limit only once every
 * stage has gone idle, later than the order alone needs.
 */
export function replayLength(programs: readonly { readonly pass: Uint8Array; readonly microBatch: Int32Array; readonly chunk: Int32Array }[], p: number, m: number, length: readonly number[]): number {
  const ends = new Float64Array(3 * 2 * p * m).fill(-1);
  const at = (kind: number, chunk: number, stage: number, mb: number) => ((kind * 2 + chunk) * p + stage) * m + mb;
  // The end of the pass on another stage (or the same stage's other chunk) that this one needs; -1 until run; 0 when none.
  const input = (kind: number, c: number, s: number, j: number): number => {
    if (kind === WEIGHT) return ends[at(BACKWARD, c, s, j)]!;
    if (kind === FORWARD) {
      if (c === 0) return s === 0 ? 0 : ends[at(FORWARD, 0, s - 1, j)]!;
      return ends[at(FORWARD, s === p - 1 ? 0 : 1, s === p - 1 ? s : s + 1, j)]!;
    }
    const own = ends[at(FORWARD, c, s, j)]!;
    const next = c === 1 ? (s === 0 ? 0 : ends[at(BACKWARD, 1, s - 1, j)]!) : ends[at(BACKWARD, s === p - 1 ? 1 : 0, s === p - 1 ? s : s + 1, j)]!;
    return own < 0 || next < 0 ? -1 : Math.max(own, next);
  };
  const next = new Int32Array(p);
  const free = new Float64Array(p);
  const stack = Array.from({ length: p }, (_, s) => s);
  while (stack.length > 0) {
    const s = stack.pop()!;
    const prog = programs[s]!;
    let advanced = false;
    for (let k = next[s]!; k < prog.pass.length; k++) {
      const kind = prog.pass[k]!;
      const ready = input(kind, prog.chunk[k]!, s, prog.microBatch[k]!);
      if (ready < 0) break;
      const end = Math.max(free[s]!, ready) + length[kind]!;
      ends[at(kind, prog.chunk[k]!, s, prog.microBatch[k]!)] = end;
      free[s] = end;
      next[s] = k + 1;
      advanced = true;
    }
    if (advanced) for (const n of [s - 1, s + 1]) if (n >= 0 && n < p && next[n]! < programs[n]!.pass.length) stack.push(n);
  }
  if (next.some((k, s) => k < programs[s]!.pass.length)) throw new Error(`internal: the ZB-V order for pp ${p}, ${m} micro-batches does not replay`);
  return Math.max(...free);
}

/** The moments no other moment of the same branch matches or exceeds in every count. */
function undominated(all: VPeak[]): VPeak[] {
  const covers = (a: VPeak, b: VPeak) => a.afterBackward === b.afterBackward && a.heldChunks >= b.heldChunks &&
    a.pendingChunks >= b.pendingChunks && a.logits >= b.logits && (a.inBackward || !b.inBackward);
  // First the two-count front within each group of equal flags and logits (the moments are distinct):
  // most held first, a moment kept when it owes more than every one kept before it.
  const groups = new Map<number, VPeak[]>();
  for (const x of all) {
    const key = (x.logits * 2 + (x.inBackward ? 1 : 0)) * 2 + (x.afterBackward ? 1 : 0);
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = []));
    g.push(x);
  }
  const fronts: VPeak[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => b.heldChunks - a.heldChunks || b.pendingChunks - a.pendingChunks);
    let most = -1;
    for (const x of g) {
      if (x.pendingChunks > most) fronts.push(x);
      most = Math.max(most, x.pendingChunks);
    }
  }
  // Then across groups, among the few left.
  return fronts.filter((b) => !fronts.some((a) => a !== b && covers(a, b)));
}

/** A min-heap of pass ends (time, stage), earliest first; ties in insertion order do not matter (the caller sorts). */
class EndQueue {
  private readonly times: number[] = [];
  private readonly stages: number[] = [];
  get size(): number {
    return this.times.length;
  }
  peekTime(): number {
    return this.times[0]!;
  }
  push(time: number, stage: number): void {
    const ts = this.times;
    const ss = this.stages;
    let k = ts.length;
    ts.push(time);
    ss.push(stage);
    while (k > 0) {
      const up = (k - 1) >> 1;
      if (ts[up]! <= time) break;
      ts[k] = ts[up]!;
      ss[k] = ss[up]!;
      k = up;
    }
    ts[k] = time;
    ss[k] = stage;
  }
  pop(): number {
    const ts = this.times;
    const ss = this.stages;
    const top = ss[0]!;
    const lastT = ts.pop()!;
    const lastS = ss.pop()!;
    const n = ts.length;
    if (n > 0) {
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        if (l >= n) break;
        const c = l + 1 < n && ts[l + 1]! < ts[l]! ? l + 1 : l;
        if (ts[c]! >= lastT) break;
        ts[k] = ts[c]!;
        ss[k] = ss[c]!;
        k = c;
      }
      ts[k] = lastT;
      ss[k] = lastS;
    }
    return top;
  }
}
