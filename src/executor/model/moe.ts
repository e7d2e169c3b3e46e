import type { Tensor } from "@tensorflow/tfjs";
import type { Grads, ModelContext, UnitParams } from "./context.js";
import { gelu, geluBackward, linear, linearInputBackward, readNow, swiglu, swigluBackward, type Tf } from "./ops.js";

/**
 * A mixture-of-experts MLP (Shazeer et al. 2017; GShard, Lepikhin et al. 2020; Switch, Fedus et al. 2022) in
 * place of a layer's dense MLP: a router (a linear layer to one logit per expert, then a softmax) sends each
 * token to its topK most probable experts, each expert is the model's MLP, and each token's output is the sum
 * of its experts' outputs weighted by their router probabilities (GShard's combine; not renormalised over the
 * topK, as Mixtral does).
 *
 * Every expert takes a fixed number of tokens from every sequence, its capacity C = seqLen x topK / experts
 * (a capacity factor of 1, GShard section 2.2): the token copies are assigned in order of choice (every
 * token's first choice before any second choice, GShard's top-2 gating), then of position; a copy whose
 * expert is full is dropped (it adds nothing to the token's output), and a slot no copy takes holds zeros.
 * So every expert computes on exactly the tokens x topK / experts rows the cost model prices for it
 * (planner/cost/compute.ts: balanced routing), and since a sequence's routing depends on its own tokens
 * only, every split that keeps sequences whole (data and pipeline parallel) routes every token as one rank
 * does, and reproduces its numerics.
 *
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
  /** Rows of each expert's buffer: sequences x capacity. */
  readonly perExpert: number;
  /** For choice j of token row t, at j x rows + t: the expert chosen. */
  readonly choice: Int32Array;
  /** For choice j of token row t, at j x rows + t: the row of the experts' stacked buffers it took, or -1 if dropped. */
  readonly slot: Int32Array;
  /** For each row of the stacked buffers: the copy j x rows + t it holds, or -1 (an empty slot). */
  readonly source: Int32Array;
}

/** Tokens each expert takes from each sequence (a capacity factor of 1); the executor requires it whole (validate.ts). */
export function expertCapacity(tokensPerSequence: number, topK: number, experts: number): number {
  return (tokensPerSequence * topK) / experts;
}

/**
 * The route of a micro-batch of `batch` sequences of `tokens` positions, from the router's probabilities
 * (rows x experts, row-major): each row's topK experts by probability (ties to the lower index), assigned
 * choice by choice, then position by position, to the first free slot of that expert's block for the row's
 * sequence.
 */
export function routeTokens(probs: Float32Array, tokens: number, batch: number, experts: number, topK: number): Route {
  const rows = tokens * batch;
  const capacity = expertCapacity(tokens, topK, experts);
  if (!Number.isInteger(capacity)) throw new Error(`internal: an expert capacity of ${capacity} tokens per sequence`);
  const perExpert = batch * capacity;
  const choice = new Int32Array(topK * rows);
  const order = Array.from({ length: experts }, (_, e) => e);
  for (let t = 0; t < rows; t++) {
    const p = probs.subarray(t * experts, (t + 1) * experts);
    const ranked = [...order].sort((a, b) => p[b]! - p[a]! || a - b);
    for (let j = 0; j < topK; j++) choice[j * rows + t] = ranked[j]!;
  }
  const slot = new Int32Array(topK * rows).fill(-1);
  const source = new Int32Array(experts * perExpert).fill(-1);
  const used = new Int32Array(experts * batch);
  for (let j = 0; j < topK; j++) {
    for (let t = 0; t < rows; t++) {
      const e = choice[j * rows + t]!;
      const seq = t % batch;
      const n = used[e * batch + seq]!;
      if (n === capacity) continue;
      used[e * batch + seq] = n + 1;
      const row = e * perExpert + seq * capacity + n;
      slot[j * rows + t] = row;
      source[row] = j * rows + t;
    }
  }
  return { experts, topK, rows, perExpert, choice, slot, source };
}

/** What the MoE MLP keeps for its backward: its route, the router's probabilities and each expert's tensors. */
export interface MoeSaved {
  readonly route: Route;
  /** The router's softmax output, rows x experts. */
  readonly probs: Tensor;
  /** Each expert's input rows (its copies of the MLP input; zeros in empty slots). */
  readonly inputs: readonly Tensor[];
  /** Each expert's pre-activation(s): [up] for GeLU, [gate, up] for SwiGLU. */
  readonly pre: readonly (readonly Tensor[])[];
  /** Each expert's activation (the input of its second matrix). */
  readonly act: readonly Tensor[];
}

/** Every tensor MoeSaved holds. */
export function moeSavedTensors(s: MoeSaved): Tensor[] {
  return [s.probs, ...s.inputs, ...s.pre.flat(), ...s.act];
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

/** The router probability of each token's j-th choice, as a column (rows x 1). */
function gateOf(tf: Tf, probs: Tensor, route: Route, j: number): Tensor {
  const at = new Int32Array(route.rows);
  for (let t = 0; t < route.rows; t++) at[t] = t * route.experts + route.choice[j * route.rows + t]!;
  return tf.reshape(tf.gather(tf.reshape(probs, [-1]), index(tf, at)), [route.rows, 1]);
}

/** Expert e's output rows from its activation (its second matrix), stacked over the experts with a zero row last. */
function expertOutputs(tf: Tf, p: UnitParams, n: string, act: readonly Tensor[]): Tensor {
  return withZeroRow(tf, tf.concat(act.map((a, e) => linear(tf, a, p.get(`${n}.moe.${e}.down.w`), p.maybe(`${n}.moe.${e}.down.b`))), 0));
}

/** The MoE MLP's output (rows x h, before the residual add) from its input b (the second norm's output). */
export function moeForward(ctx: ModelContext, p: UnitParams, n: string, b: Tensor): { z: Tensor; saved: MoeSaved } {
  const { tf, model } = ctx;
  const moe = model.moe!;
  const probs = ctx.save(tf.softmax(linear(tf, b, p.get(`${n}.moe.router.w`), undefined)));
  // Routed at once from a view of the heap, before any other TensorFlow.js call can move it (ops.ts readNow).
  const route = routeTokens(readNow(tf, probs), ctx.tokens, ctx.batch, moe.experts, moe.topK);
  const bz = withZeroRow(tf, b);
  const inputs: Tensor[] = [];
  const pre: Tensor[][] = [];
  const act: Tensor[] = [];
  for (let e = 0; e < moe.experts; e++) {
    const rows = rowsOrZero(route.source, e * route.perExpert, route.perExpert, route.rows, (v) => v % route.rows);
    const x = ctx.save(tf.gather(bz, index(tf, rows)));
    inputs.push(x);
    const up = ctx.save(linear(tf, x, p.get(`${n}.moe.${e}.up.w`), p.maybe(`${n}.moe.${e}.up.b`)));
    if (model.mlp === "swiglu") {
      const gate = ctx.save(linear(tf, x, p.get(`${n}.moe.${e}.gate.w`), p.maybe(`${n}.moe.${e}.gate.b`)));
      pre.push([gate, up]);
      act.push(ctx.save(swiglu(tf, gate, up)));
    } else {
      pre.push([up]);
      act.push(ctx.save(gelu(tf, up)));
    }
  }
  const out = expertOutputs(tf, p, n, act);
  let z: Tensor | undefined;
  for (let j = 0; j < moe.topK; j++) {
    const copy = tf.mul(gateOf(tf, probs, route, j), tf.gather(out, index(tf, rowsOrZero(route.slot, j * route.rows, route.rows, moe.experts * route.perExpert))));
    z = z === undefined ? copy : tf.add(z, copy);
  }
  return { z: z!, saved: { route, probs, inputs, pre, act } };
}

/**
 * The MoE MLP's backward: the gradient of its input b (to which the caller adds nothing else: the router's
 * input is b too) from dz, the gradient of its output; the weight gradients go to `grads` (the router's and
 * every expert's, as linearInputBackward leaves them). Each expert's output is computed again from its kept
 * activation (one product per expert) for the gradient of the router probability that weighted it.
 */
export function moeBackward(ctx: ModelContext, grads: Grads, p: UnitParams, n: string, s: MoeSaved, b: Tensor, dz: Tensor): Tensor {
  const { tf, model } = ctx;
  const { route } = s;
  const hasBias = model.linearBias;
  const experts = route.experts;
  const stackedZero = experts * route.perExpert;
  const out = expertOutputs(tf, p, n, s.act);
  // Per choice: the copy's output gradient (its gate times dz) and its gate's gradient (dz . its output).
  const dCopies: Tensor[] = [];
  let dProbs: Tensor | undefined;
  for (let j = 0; j < route.topK; j++) {
    const taken = tf.gather(out, index(tf, rowsOrZero(route.slot, j * route.rows, route.rows, stackedZero)));
    dCopies.push(tf.mul(gateOf(tf, s.probs, route, j), dz));
    const dGate = tf.sum(tf.mul(dz, taken), 1, true);
    const chosen = tf.cast(tf.oneHot(index(tf, route.choice.subarray(j * route.rows, (j + 1) * route.rows)), experts), "float32");
    const part = tf.mul(chosen, dGate);
    dProbs = dProbs === undefined ? part : tf.add(dProbs, part);
  }
  const dCopyRows = withZeroRow(tf, tf.concat(dCopies, 0));
  const dInputs: Tensor[] = [];
  for (let e = 0; e < experts; e++) {
    const e0 = `${n}.moe.${e}`;
    const dOut = tf.gather(dCopyRows, index(tf, rowsOrZero(route.source, e * route.perExpert, route.perExpert, route.topK * route.rows)));
    const dAct = linearInputBackward(ctx, grads, `${e0}.down`, s.act[e]!, p.get(`${e0}.down.w`), dOut, hasBias);
    const x = s.inputs[e]!;
    if (model.mlp === "swiglu") {
      const { da, du } = swigluBackward(tf, s.pre[e]![0]!, s.pre[e]![1]!, dAct);
      dInputs.push(tf.add(linearInputBackward(ctx, grads, `${e0}.gate`, x, p.get(`${e0}.gate.w`), da, hasBias),
        linearInputBackward(ctx, grads, `${e0}.up`, x, p.get(`${e0}.up.w`), du, hasBias)));
    } else {
      dInputs.push(linearInputBackward(ctx, grads, `${e0}.up`, x, p.get(`${e0}.up.w`), geluBackward(tf, s.pre[e]![0]!, dAct), hasBias));
    }
  }
  const dInputRows = withZeroRow(tf, tf.concat(dInputs, 0));
  let db = linearInputBackward(ctx, grads, `${n}.moe.router`, b, p.get(`${n}.moe.router.w`), softmaxBackward(tf, s.probs, dProbs!), false);
  for (let j = 0; j < route.topK; j++) db = tf.add(db, tf.gather(dInputRows, index(tf, rowsOrZero(route.slot, j * route.rows, route.rows, stackedZero))));
  return db;
}

/** The softmax's input gradient from its output y and output gradient dy, row by row: y (dy - sum(dy y)). */
function softmaxBackward(tf: Tf, y: Tensor, dy: Tensor): Tensor {
  return tf.mul(y, tf.sub(dy, tf.sum(tf.mul(dy, y), 1, true)));
}
