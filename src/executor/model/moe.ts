import type { Tensor } from "@tensorflow/tfjs";
import { gatherSp, reduceRow, residualPositions, type Grads, type ModelContext, type UnitParams } from "./context.js";
import { mlpActivation, mlpActivationBackward } from "./mlp.js";
import { linear, linearInputBackward } from "./ops.js";
import { combine, combineBackward, dispatch, dispatchBackward, softmaxBackward, takenMask, type Route } from "./routing.js";

/**
 * A mixture-of-experts MLP (Shazeer et al. 2017; GShard, Lepikhin et al. 2020; Switch, Fedus et al. 2022) in
 * place of a layer's dense MLP: a router (a linear layer to one logit per expert, then a softmax) sends each
 * token to its topK most probable experts, each expert is the model's MLP, and each token's output is the sum
 * of its experts' outputs weighted by their router probabilities (GShard's combine; not renormalised over the
 * topK, as Mixtral does).
 *
 * Every expert takes G x topK / experts tokens of each routing group (G positions of a sequence,
 * layout.ts routingGroupTokens), and a copy whose expert is full is dropped (model/routing.ts, which routes, dispatches and
 * combines). So every expert computes on exactly the tokens x topK / experts rows the cost model prices for
 * it (planner/cost/compute.ts: balanced routing), and since a group's routing depends on its own tokens
 * only, every split routes every token as the one-rank run with the same groups does, and reproduces its
 * numerics.
 *
 * Expert parallel (GShard; Megatron-LM's expert-parallel group): the members of an ep group hold equal,
 * contiguous blocks of the experts (layout.ts, a unit of experts per member) and each routes its own
 * tokens; one all-to-all sends every expert's rows to the member that holds it and another brings the
 * outputs back, and the backward does the same with their gradients: the cost model's two all-to-alls
 * forward and two backward of x k h each (planner/cost/communication.ts epCostPerMicroBatch), since every
 * expert's buffer has its capacity's rows whatever the route.
 */

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
 * with it (expert parallel sends an expert's outputs to the ranks whose tokens they are). With tp this is
 * the allgather path (ep 1), so every expert is this rank's; tp with ep takes moeForwardAlltoall.
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
  if (alltoallDispatch(ctx)) return moeForwardAlltoall(ctx, p, n, b);
  const { tf, model } = ctx;
  const moe = model.moe!;
  const bFull = gatherSp(ctx, b, "tp.layer");
  const probs = ctx.save(tf.softmax(linear(tf, bFull, p.get(`${n}.moe.router.w`), undefined)));
  const { route, buffers } = dispatch(tf, probs, bFull, ctx.tokens, ctx.batch, moe.topK, ctx.routingTokens ?? ctx.tokens);
  const inputs = toExperts(ctx, buffers, route.perExpert).map((x) => ctx.save(x));
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
  let z = combine(tf, probs, route, out);
  z = reduceRow(ctx, z, "tp.layer");
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
  if (alltoallDispatch(ctx)) return moeBackwardAlltoall(ctx, grads, p, n, s, b, dz);
  const { tf, model } = ctx;
  const { route } = s;
  const experts = route.experts;
  const dzFull = gatherSp(ctx, dz, "tp.layer");
  const combined = combineBackward(tf, s.probs, route, s.out, dzFull);
  let dProbs = combined.dProbs;
  // The outputs' biases, added after the reduction on this rank's rows: their gradients, and their part of the probabilities'.
  const biases = biasesAfterReduction(ctx, p, n, experts);
  if (biases !== undefined) {
    const taken = takenMask(tf, route);
    const weights = localRows(ctx, tf.mul(s.probs, taken));
    tf.unstack(tf.matMul(weights, dz, true, false)).forEach((d, e) => grads.set(`${expertName(n, e)}.down.b`, tf.keep(d)));
    dProbs = tf.add(dProbs, fromLocalRows(ctx, tf.mul(localRows(ctx, taken), tf.matMul(dz, biases, false, true)), route.rows));
  }
  const dOuts = toExperts(ctx, combined.dBuffers, route.perExpert);
  const first = firstExpert(ctx, experts);
  const dInputs = dOuts.map((dOut, i) => {
    const e = expertName(n, first + i);
    const dAct = linearInputBackward(ctx, grads, `${e}.down`, s.act[i]!, p.get(`${e}.down.w`), dOut, model.linearBias && biases === undefined);
    return mlpActivationBackward(ctx, grads, p, e, s.inputs[i]!, s.pre[i]!, dAct);
  });
  const bFull = gatherSp(ctx, b, "tp.sp-regather");
  const dRouter = linearInputBackward(ctx, grads, `${n}.moe.router`, bFull, p.get(`${n}.moe.router.w`), softmaxBackward(tf, s.probs, dProbs), false);
  const db = tf.add(dRouter, dispatchBackward(tf, route, fromExperts(ctx, dInputs, route.perExpert)));
  return reduceRow(ctx, db, "tp.layer");
}

/**
 * Tensor and expert parallel together (sequence parallel required): Megatron-Core's alltoall token
 * dispatcher with the experts split over tp as the MLP is (moe/token_dispatcher.py; the cost model's
 * planner/cost/communication.ts tpCostPerMicroBatch). The layer's input stays this tp rank's rows; each tp
 * rank routes its own tokens (its positions of each sequence a routing group: the one-rank run that checks
 * the plan routes by the same groups) and sends its copies to their experts' ep members; the tp ranks then
 * all-gather the rows their experts received, run their shards of the experts on them, reduce-scatter the
 * partial outputs and send them back, and each combines its own tokens' outputs. Backward, the same in
 * reverse. So the experts' rows cross tp (x k h, each way) where the dense MLP's x h do.
 */
function alltoallDispatch(ctx: ModelContext): boolean {
  return ctx.tp.size > 1 && ctx.ep !== undefined;
}

/**
 * The rows every tp rank received for its local experts, all-gathered over tp: expert i's rows from every tp
 * rank's block, in tp order (`rows` per expert and block); scatterExpertRows takes them back in that layout.
 */
function gatherExpertRows(ctx: ModelContext, perExpert: readonly Tensor[], rows: number): Tensor[] {
  const { tf } = ctx;
  const local = perExpert.length;
  const all = ctx.tp.allGather(tf.concat([...perExpert], 0), "tp.moe");
  return Array.from({ length: local }, (_, i) => tf.concat(Array.from({ length: ctx.tp.size }, (_, j) => tf.slice(all, [(j * local + i) * rows, 0], [rows, -1])), 0));
}

/** The partial sums of every local expert's rows (tp blocks of `rows`), reduce-scattered over tp: this rank's block of each. */
function scatterExpertRows(ctx: ModelContext, perExpert: readonly Tensor[], rows: number): Tensor[] {
  const { tf } = ctx;
  const blocks = Array.from({ length: ctx.tp.size }, (_, j) => perExpert.map((x) => tf.slice(x, [j * rows, 0], [rows, -1]))).flat();
  const mine = ctx.tp.reduceScatter(tf.concat(blocks, 0), "tp.moe");
  return perExpert.map((_, i) => tf.slice(mine, [i * rows, 0], [rows, -1]));
}

function moeForwardAlltoall(ctx: ModelContext, p: UnitParams, n: string, b: Tensor): { z: Tensor; saved: MoeSaved } {
  const { tf, model } = ctx;
  const moe = model.moe!;
  const { count } = residualPositions(ctx);
  const probs = ctx.save(tf.softmax(linear(tf, b, p.get(`${n}.moe.router.w`), undefined)));
  const { route, buffers } = dispatch(tf, probs, b, count, ctx.batch, moe.topK, ctx.routingTokens ?? count);
  const received = toExperts(ctx, buffers, route.perExpert);
  const rows = received[0]!.shape[0]!;
  const inputs = gatherExpertRows(ctx, received, rows).map((x) => ctx.save(x));
  const first = firstExpert(ctx, moe.experts);
  const pre: Tensor[][] = [];
  const act: Tensor[] = [];
  const partial = inputs.map((x, i) => {
    const e = expertName(n, first + i);
    const m = mlpActivation(ctx, p, e, x);
    pre.push(m.pre);
    act.push(m.act);
    return linear(tf, m.act, p.get(`${e}.down.w`), undefined);
  });
  // Each expert's output bias, whole on every tp rank, added once: after the reduction, on this rank's rows.
  const outs = scatterExpertRows(ctx, partial, rows).map((y, i) => {
    const bias = p.maybe(`${expertName(n, first + i)}.down.b`);
    return bias === undefined ? y : tf.add(y, bias);
  });
  const out = ctx.save(fromExperts(ctx, outs, route.perExpert));
  return { z: combine(tf, probs, route, out), saved: { route, probs, inputs, pre, act, out } };
}

function moeBackwardAlltoall(ctx: ModelContext, grads: Grads, p: UnitParams, n: string, s: MoeSaved, b: Tensor, dz: Tensor): Tensor {
  const { tf, model } = ctx;
  const { route } = s;
  const combined = combineBackward(tf, s.probs, route, s.out, dz);
  const dOuts = toExperts(ctx, combined.dBuffers, route.perExpert);
  const rows = dOuts[0]!.shape[0]!;
  const first = firstExpert(ctx, route.experts);
  // The output biases' gradients from this rank's rows: partial sums over tp, which SP's once-per-step sum of
  // the replicated weights' gradients adds up (parallel/sp-sync.ts).
  if (model.linearBias) dOuts.forEach((d, i) => grads.set(`${expertName(n, first + i)}.down.b`, tf.keep(tf.sum(d, 0))));
  const dFull = gatherExpertRows(ctx, dOuts, rows);
  const dInputs = dFull.map((dOut, i) => {
    const e = expertName(n, first + i);
    const dAct = linearInputBackward(ctx, grads, `${e}.down`, s.act[i]!, p.get(`${e}.down.w`), dOut, false);
    return mlpActivationBackward(ctx, grads, p, e, s.inputs[i]!, s.pre[i]!, dAct);
  });
  const dReceived = scatterExpertRows(ctx, dInputs, rows);
  const dRouter = linearInputBackward(ctx, grads, `${n}.moe.router`, b, p.get(`${n}.moe.router.w`), softmaxBackward(tf, s.probs, combined.dProbs), false);
  return tf.add(dRouter, dispatchBackward(tf, route, fromExperts(ctx, dReceived, route.perExpert)));
}
