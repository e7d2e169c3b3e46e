import type { Tensor } from "@tensorflow/tfjs";
import { gatherSp, reduceRow, residualPositions, type Grads, type ModelContext, type UnitParams } from "./context.js";
import { mlpActivation, mlpActivationBackward } from "./mlp.js";
import { linear, linearInputBackward, readNow, type Tf } from "./ops.js";

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
 *
 * Expert parallel (GShard; Megatron-LM's expert-parallel group): the members of an ep group hold equal,
 * contiguous blocks of the experts (layout.ts, a unit of experts per member) and each routes its own
 * tokens; one all-to-all sends every expert's rows to the member that holds it and another brings the
 * outputs back, and the backward does the same with their gradients: the cost model's two all-to-alls
 * forward and two backward of x k h each (planner/cost/communication.ts epCostPerMicroBatch), since every
 * expert's buffer has its capacity's rows whatever the route.
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
  /** Each of this rank's experts' input rows (copies of the MLP input, from every member of the ep group; zeros in empty slots). */
  readonly inputs: readonly Tensor[];
  /** Each of this rank's experts' pre-activation(s): [up] for GeLU, [gate, up] for SwiGLU. */
  readonly pre: readonly (readonly Tensor[])[];
  /** Each of this rank's experts' activation (the input of its second matrix). */
  readonly act: readonly Tensor[];
  /** Every expert's output for this rank's token copies, stacked as the route's buffers (for the probabilities' gradient). */
  readonly out: Tensor;
}

/** Every tensor MoeSaved holds. */
export function moeSavedTensors(s: MoeSaved): Tensor[] {
  return [s.probs, ...s.inputs, ...s.pre.flat(), ...s.act, s.out];
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
function takenMask(tf: Tf, route: Route): Tensor {
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
 * Expert parallelism's two exchanges (GShard's dispatch and combine all-to-alls). `toExperts`: every
 * expert's rows of this rank's tokens (experts x R rows, R = route.perExpert, in expert order, so block k
 * holds member k's experts) in, each of this rank's experts' rows from every member out (its rows from
 * member 0, then from member 1, ...). `fromExperts` is the inverse. Without an ep group, the identity.
 */
function toExperts(ctx: ModelContext, perExpert: readonly Tensor[], r: number): Tensor[] {
  const { tf } = ctx;
  const ep = ctx.ep;
  if (ep === undefined) return [...perExpert];
  const local = perExpert.length / ep.size;
  const got = ep.allToAll(tf.concat([...perExpert], 0), "ep.moe");
  return Array.from({ length: local }, (_, i) => tf.concat(Array.from({ length: ep.size }, (_, k) => tf.slice(got, [(k * local + i) * r, 0], [r, -1])), 0));
}

function fromExperts(ctx: ModelContext, mine: readonly Tensor[], r: number): Tensor {
  const { tf } = ctx;
  const ep = ctx.ep;
  if (ep === undefined) return tf.concat([...mine], 0);
  const send = Array.from({ length: ep.size }, (_, k) => mine.map((x) => tf.slice(x, [k * r, 0], [r, -1]))).flat();
  return ep.allToAll(tf.concat(send, 0), "ep.moe");
}

/** Expert `e` (a global index) of layer `n`: the names of its parameters. */
function expertName(n: string, e: number): string {
  return `${n}.moe.${e}`;
}

/** The first expert this rank holds (experts are split over the ep group in equal, contiguous blocks). */
function firstExpert(ctx: ModelContext, experts: number): number {
  return ctx.ep === undefined ? 0 : (ctx.ep.rank * experts) / ctx.ep.size;
}

/** Rows [first, first + count) of x: this tp rank's block of the micro-batch under sequence parallel, else all. */
function localRows(ctx: ModelContext, x: Tensor): Tensor {
  if (!ctx.sp) return x;
  const { first, count } = residualPositions(ctx);
  return ctx.tf.slice(x, [(first - ctx.pos0) * ctx.batch, 0], [count * ctx.batch, -1]);
}

/** x's rows as this rank's block of a tensor of every rank's rows, zeros elsewhere (the inverse of localRows). */
function fromLocalRows(ctx: ModelContext, x: Tensor, rows: number): Tensor {
  if (!ctx.sp) return x;
  const at = (residualPositions(ctx).first - ctx.pos0) * ctx.batch;
  return ctx.tf.pad(x, [[at, rows - at - x.shape[0]!], [0, 0]]);
}

/**
 * Under tensor parallelism, the experts' second-matrix biases (whole on every tp rank), one row per expert,
 * added after the reduction; else undefined: each expert adds its own to its output, so that it travels
 * with it (expert parallel sends an expert's outputs to the ranks whose tokens they are; validate.ts
 * refuses ep with tp, so here every expert is this rank's).
 */
function biasesAfterReduction(ctx: ModelContext, p: UnitParams, n: string, experts: number): Tensor | undefined {
  if (!ctx.model.linearBias || ctx.tp.size === 1) return undefined;
  return ctx.tf.stack(Array.from({ length: experts }, (_, e) => p.get(`${expertName(n, e)}.down.b`)));
}

/**
 * The MoE MLP's output (its rows of this rank: 1/tp of them under SP, before the residual add) from its
 * input b (the second norm's output, the same rows). Tensor parallel (Megatron-LM's expert tensor
 * parallelism, the MLP's split: the first matrix by columns, the second by rows; sequence parallel
 * required): every tp rank gathers the rows, routes them all alike, runs its shard of every expert and
 * combines the partial outputs, which one reduce-scatter sums, as the dense MLP's; the outputs' biases,
 * whole on every rank, are added after it, each weighted as its expert's output.
 */
export function moeForward(ctx: ModelContext, p: UnitParams, n: string, b: Tensor): { z: Tensor; saved: MoeSaved } {
  const { tf, model } = ctx;
  const moe = model.moe!;
  const bFull = gatherSp(ctx, b, "tp.layer");
  const probs = ctx.save(tf.softmax(linear(tf, bFull, p.get(`${n}.moe.router.w`), undefined)));
  // Routed at once from a view of the heap, before any other TensorFlow.js call can move it (ops.ts readNow).
  const route = routeTokens(readNow(tf, probs), ctx.tokens, ctx.batch, moe.experts, moe.topK);
  const bz = withZeroRow(tf, bFull);
  const dispatched = Array.from({ length: moe.experts }, (_, e) =>
    tf.gather(bz, bufferRows(tf, route, e, route.rows, (copy) => copy % route.rows)));
  const inputs = toExperts(ctx, dispatched, route.perExpert).map((x) => ctx.save(x));
  const first = firstExpert(ctx, moe.experts);
  const biases = biasesAfterReduction(ctx, p, n, moe.experts);
  const pre: Tensor[][] = [];
  const act: Tensor[] = [];
  const outs = inputs.map((x, i) => {
    const e = expertName(n, first + i);
    const m = mlpActivation(ctx, p, e, x);
    pre.push(m.pre);
    act.push(m.act);
    return linear(tf, m.act, p.get(`${e}.down.w`), biases === undefined ? p.maybe(`${e}.down.b`) : undefined);
  });
  const out = ctx.save(fromExperts(ctx, outs, route.perExpert));
  const outz = withZeroRow(tf, out);
  let z: Tensor | undefined;
  for (let j = 0; j < moe.topK; j++) {
    const copy = tf.mul(gateOf(tf, probs, route, j), tf.gather(outz, copyRows(tf, route, j)));
    z = z === undefined ? copy : tf.add(z, copy);
  }
  z = reduceRow(ctx, z!, "tp.layer");
  // Each expert's bias weighted as its output: by the probability of every copy that reached it.
  if (biases !== undefined) z = tf.add(z, tf.matMul(localRows(ctx, tf.mul(probs, takenMask(tf, route))), biases));
  return { z, saved: { route, probs, inputs, pre, act, out } };
}

/**
 * The MoE MLP's backward: the gradient of its input b (this rank's rows, as moeForward took them; to which
 * the caller adds nothing else: the router's input is b too) from dz, the gradient of its output; the
 * weight gradients go to `grads` (the router's and this rank's experts', as linearInputBackward leaves them,
 * the outputs' biases from this rank's rows). Under expert parallelism the copies' output gradients go to
 * their experts' members and the input gradients come back: the forward's two exchanges, reversed. Under
 * tensor parallelism each rank's gradients of the probabilities, of b and of the router are partial sums
 * (from its shard of the experts, and the biases' part from its rows): the reduce-scatter of b's gradient
 * and the once-per-step sum of the replicated weights' gradients (parallel/sp-sync.ts) add them up.
 */
export function moeBackward(ctx: ModelContext, grads: Grads, p: UnitParams, n: string, s: MoeSaved, b: Tensor, dz: Tensor): Tensor {
  const { tf, model } = ctx;
  const { route } = s;
  const experts = route.experts;
  const dzFull = gatherSp(ctx, dz, "tp.layer");
  const outz = withZeroRow(tf, s.out);
  // Per choice: the copy's output gradient (its gate times dz) and its gate's gradient (dz . its output).
  const dCopies: Tensor[] = [];
  let dProbs: Tensor | undefined;
  for (let j = 0; j < route.topK; j++) {
    const taken = tf.gather(outz, copyRows(tf, route, j));
    dCopies.push(tf.mul(gateOf(tf, s.probs, route, j), dzFull));
    const dGate = tf.sum(tf.mul(dzFull, taken), 1, true);
    const chosen = tf.cast(tf.oneHot(index(tf, route.choice.subarray(j * route.rows, (j + 1) * route.rows)), experts), "float32");
    const part = tf.mul(chosen, dGate);
    dProbs = dProbs === undefined ? part : tf.add(dProbs, part);
  }
  // The outputs' biases, added after the reduction on this rank's rows: their gradients, and their part of the probabilities'.
  const biases = biasesAfterReduction(ctx, p, n, experts);
  if (biases !== undefined) {
    const taken = takenMask(tf, route);
    const weights = localRows(ctx, tf.mul(s.probs, taken));
    tf.unstack(tf.matMul(weights, dz, true, false)).forEach((d, e) => grads.set(`${expertName(n, e)}.down.b`, tf.keep(d)));
    dProbs = tf.add(dProbs!, fromLocalRows(ctx, tf.mul(localRows(ctx, taken), tf.matMul(dz, biases, false, true)), route.rows));
  }
  const dCopyRows = withZeroRow(tf, tf.concat(dCopies, 0));
  const dDispatched = Array.from({ length: experts }, (_, e) =>
    tf.gather(dCopyRows, bufferRows(tf, route, e, route.topK * route.rows)));
  const dOuts = toExperts(ctx, dDispatched, route.perExpert);
  const first = firstExpert(ctx, experts);
  const dInputs = dOuts.map((dOut, i) => {
    const e = expertName(n, first + i);
    const dAct = linearInputBackward(ctx, grads, `${e}.down`, s.act[i]!, p.get(`${e}.down.w`), dOut, model.linearBias && biases === undefined);
    return mlpActivationBackward(ctx, grads, p, e, s.inputs[i]!, s.pre[i]!, dAct);
  });
  const dInputRows = withZeroRow(tf, fromExperts(ctx, dInputs, route.perExpert));
  const bFull = gatherSp(ctx, b, "tp.sp-regather");
  let db = linearInputBackward(ctx, grads, `${n}.moe.router`, bFull, p.get(`${n}.moe.router.w`), softmaxBackward(tf, s.probs, dProbs!), false);
  for (let j = 0; j < route.topK; j++) db = tf.add(db, tf.gather(dInputRows, copyRows(tf, route, j)));
  return reduceRow(ctx, db, "tp.layer");
}

/** The softmax's input gradient from its output y and output gradient dy, row by row: y (dy - sum(dy y)). */
function softmaxBackward(tf: Tf, y: Tensor, dy: Tensor): Tensor {
  return tf.mul(y, tf.sub(dy, tf.sum(tf.mul(dy, y), 1, true)));
}
