import type { Tensor } from "@tensorflow/tfjs";
import { readNow, type Tf } from "./ops.js";

/**
 * A mixture of experts' token routing (model/moe.ts): which expert slot each token copy takes, the dispatch
 * of the copies into the experts' buffers, the combine of the experts' outputs into each token's output,
 * and the backward of both. The experts, the router's linear layer and the expert-parallel exchange are
 * moe.ts's; what is here is what a mixture of experts adds besides GEMMs, which calibrate times on its own
 * (measure/routing.ts) so that the cost model can price it (planner/cost/moe-routing.ts moeRoutingBytes).
 *
 * Tokens are routed in groups (GShard section 2.2): each sequence's positions in contiguous runs of G, a
 * context-parallel rank's share of it (G = seqLen / cp, and a tp rank's share of that under the alltoall
 * dispatcher: layout.ts routingGroupTokens; the one-rank run that checks the plan routes by the same
 * groups, so it drops the same copies). Every expert takes a fixed number of tokens from every
 * group, its capacity C = G x topK / experts (a capacity factor of 1): the group's token copies are assigned
 * in order of choice (every token's first choice before any second choice, GShard's top-2 gating), then of
 * position; a copy whose expert is full is dropped (it adds nothing to the token's output), and a slot no
 * copy takes holds zeros.
 * Dispatch and combine are row gathers with index lists made from the router's probabilities (one read of
 * them per micro-batch and layer), and their gradients are gathers too, since every buffer row belongs to
 * one token copy; no scatter is needed.
 */

/** Where each token copy went, for one micro-batch (rows are position-major: row = position x batch + sequence). */
export interface Route {
  readonly experts: number;
  readonly topK: number;
  /** Token rows of the micro-batch. */
  readonly rows: number;
  /** Rows of each expert's buffer: routing groups x capacity. */
  readonly perExpert: number;
  /** For choice j of token row t, at j x rows + t: the expert chosen. */
  readonly choice: Int32Array;
  /** For choice j of token row t, at j x rows + t: the row of the experts' stacked buffers it took, or -1 if dropped. */
  readonly slot: Int32Array;
  /** For each row of the stacked buffers: the copy j x rows + t it holds, or -1 (an empty slot). */
  readonly source: Int32Array;
}

/** Tokens each expert takes from each routing group of `groupTokens` positions (a capacity factor of 1); the executor requires it whole (validate.ts). */
export function expertCapacity(groupTokens: number, topK: number, experts: number): number {
  return (groupTokens * topK) / experts;
}

/**
 * The route of a micro-batch of `batch` sequences of `tokens` positions, from the router's probabilities
 * (rows x experts, row-major): each row's topK experts by probability (ties to the lower index), assigned
 * choice by choice, then position by position, to the first free slot of that expert's block for the row's
 * routing group (its sequence's positions in runs of `groupTokens`, by default all of them).
 */
export function routeTokens(probs: Float32Array, tokens: number, batch: number, experts: number, topK: number, groupTokens = tokens): Route {
  const rows = tokens * batch;
  const capacity = expertCapacity(groupTokens, topK, experts);
  if (!Number.isInteger(capacity) || tokens % groupTokens !== 0) {
    throw new Error(`internal: routing groups of ${groupTokens} of ${tokens} tokens, an expert capacity of ${capacity} tokens per group`);
  }
  const groups = batch * (tokens / groupTokens);
  const perExpert = groups * capacity;
  const choice = new Int32Array(topK * rows);
  const order = Array.from({ length: experts }, (_, e) => e);
  for (let t = 0; t < rows; t++) {
    const p = probs.subarray(t * experts, (t + 1) * experts);
    const ranked = [...order].sort((a, b) => p[b]! - p[a]! || a - b);
    for (let j = 0; j < topK; j++) choice[j * rows + t] = ranked[j]!;
  }
  const slot = new Int32Array(topK * rows).fill(-1);
  const source = new Int32Array(experts * perExpert).fill(-1);
  const used = new Int32Array(experts * groups);
  for (let j = 0; j < topK; j++) {
    for (let t = 0; t < rows; t++) {
      const e = choice[j * rows + t]!;
      // rows are position-major: t = position x batch + sequence
      const group = Math.floor(Math.floor(t / batch) / groupTokens) * batch + (t % batch);
      const n = used[e * groups + group]!;
      if (n === capacity) continue;
      used[e * groups + group] = n + 1;
      const row = e * perExpert + group * capacity + n;
      slot[j * rows + t] = row;
      source[row] = j * rows + t;
    }
  }
  return { experts, topK, rows, perExpert, choice, slot, source };
}

const index = (tf: Tf, values: Int32Array) => tf.tensor1d(values, "int32");

/** x with a row of zeros appended: the row an empty slot or a dropped copy gathers. */
function withZeroRow(tf: Tf, x: Tensor): Tensor {
  return tf.concat([x, tf.zeros([1, x.shape[1]!])], 0);
}

/** Gather indices into [x; zeros] for `count` entries of `map` from `first`: the entry, or the zero row where it is -1. */
function rowsOrZero(map: Int32Array, first: number, count: number, zeroRow: number, of: (v: number) => number = (v) => v): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = map[first + i]!;
    out[i] = v < 0 ? zeroRow : of(v);
  }
  return out;
}

/** Gather indices of every token's j-th copy in the experts' stacked buffers, with a zero row appended (the dropped copies'). */
function copyRows(tf: Tf, route: Route, j: number): Tensor {
  return index(tf, rowsOrZero(route.slot, j * route.rows, route.rows, route.experts * route.perExpert));
}

/** Gather indices of expert e's buffer rows in a list of `zeroRow` rows with a zero row appended (the empty slots'); `of` maps a copy to its row. */
function bufferRows(tf: Tf, route: Route, e: number, zeroRow: number, of?: (copy: number) => number): Tensor {
  return index(tf, rowsOrZero(route.source, e * route.perExpert, route.perExpert, zeroRow, of));
}

/** 1 for each token row and expert a copy of it reached (chosen and not dropped), else 0 (rows x experts). */
export function takenMask(tf: Tf, route: Route): Tensor {
  const taken = new Float32Array(route.rows * route.experts);
  for (let j = 0; j < route.topK; j++) {
    for (let t = 0; t < route.rows; t++) if (route.slot[j * route.rows + t]! >= 0) taken[t * route.experts + route.choice[j * route.rows + t]!] = 1;
  }
  return tf.tensor2d(taken, [route.rows, route.experts]);
}

/** The router probability of each token's j-th choice, as a column (rows x 1). */
function gateOf(tf: Tf, probs: Tensor, route: Route, j: number): Tensor {
  const at = new Int32Array(route.rows);
  for (let t = 0; t < route.rows; t++) at[t] = t * route.experts + route.choice[j * route.rows + t]!;
  return tf.reshape(tf.gather(tf.reshape(probs, [-1]), index(tf, at)), [route.rows, 1]);
}

/**
 * Routes a micro-batch of `batch` sequences of `tokens` positions, in groups of `groupTokens`, by the
 * router's probabilities (rows x experts) and dispatches its rows x: every expert's buffer (perExpert rows
 * each, zeros in empty slots).
 */
export function dispatch(tf: Tf, probs: Tensor, x: Tensor, tokens: number, batch: number, topK: number, groupTokens = tokens): { route: Route; buffers: Tensor[] } {
  const experts = probs.shape[1]!;
  // Routed at once from a view of the heap, before any other TensorFlow.js call can move it (ops.ts readNow).
  const route = routeTokens(readNow(tf, probs), tokens, batch, experts, topK, groupTokens);
  const xz = withZeroRow(tf, x);
  const buffers = Array.from({ length: experts }, (_, e) => tf.gather(xz, bufferRows(tf, route, e, route.rows, (copy) => copy % route.rows)));
  return { route, buffers };
}

/**
 * Each token's output: the sum of its copies' rows of `out` (every expert's outputs, stacked as the
 * route's buffers), each weighted by its router probability (GShard's combine; a dropped copy adds nothing).
 */
export function combine(tf: Tf, probs: Tensor, route: Route, out: Tensor): Tensor {
  const outz = withZeroRow(tf, out);
  let z: Tensor | undefined;
  for (let j = 0; j < route.topK; j++) {
    const copy = tf.mul(gateOf(tf, probs, route, j), tf.gather(outz, copyRows(tf, route, j)));
    z = z === undefined ? copy : tf.add(z, copy);
  }
  return z!;
}

/**
 * Back through combine, from dz (the gradient of its output, rows x width): the gradient of every expert's
 * buffer of outputs (each copy's gate times dz; zeros in empty slots) and of the router's probabilities
 * (each copy's dz . its output, at its expert's column).
 */
export function combineBackward(tf: Tf, probs: Tensor, route: Route, out: Tensor, dz: Tensor): { dBuffers: Tensor[]; dProbs: Tensor } {
  const outz = withZeroRow(tf, out);
  const dCopies: Tensor[] = [];
  let dProbs: Tensor | undefined;
  for (let j = 0; j < route.topK; j++) {
    const taken = tf.gather(outz, copyRows(tf, route, j));
    dCopies.push(tf.mul(gateOf(tf, probs, route, j), dz));
    const dGate = tf.sum(tf.mul(dz, taken), 1, true);
    const chosen = tf.cast(tf.oneHot(index(tf, route.choice.subarray(j * route.rows, (j + 1) * route.rows)), route.experts), "float32");
    const part = tf.mul(chosen, dGate);
    dProbs = dProbs === undefined ? part : tf.add(dProbs, part);
  }
  const dCopyRows = withZeroRow(tf, tf.concat(dCopies, 0));
  const dBuffers = Array.from({ length: route.experts }, (_, e) => tf.gather(dCopyRows, bufferRows(tf, route, e, route.topK * route.rows)));
  return { dBuffers, dProbs: dProbs! };
}

/** Back through dispatch: the gradient of its rows x from every expert's buffer of input gradients, stacked as the route's buffers. */
export function dispatchBackward(tf: Tf, route: Route, dBuffers: Tensor): Tensor {
  const rows = withZeroRow(tf, dBuffers);
  let dx: Tensor | undefined;
  for (let j = 0; j < route.topK; j++) {
    const part = tf.gather(rows, copyRows(tf, route, j));
    dx = dx === undefined ? part : tf.add(dx, part);
  }
  return dx!;
}

/** The softmax's input gradient from its output y and output gradient dy, row by row: y (dy - sum(dy y)). */
export function softmaxBackward(tf: Tf, y: Tensor, dy: Tensor): Tensor {
  return tf.mul(y, tf.sub(dy, tf.sum(tf.mul(dy, y), 1, true)));
}
