import type { Tensor } from "@tensorflow/tfjs";
import { alibiSlopes, attention, attentionBackward, type AttentionGeometry } from "./attention.js";
import { gatherSp, reduceRow, type Grads, type ModelContext, type UnitParams } from "./context.js";
import { moeBackward, moeForward, moeSavedTensors, type MoeSaved } from "./moe.js";
import { linear, linearInputBackward, norm, normBackward, rope } from "./ops.js";
import { mlpActivation, mlpActivationBackward } from "./mlp.js";

/**
 * One pre-norm decoder layer, Megatron tensor parallel (Shoeybi et al. 2019, fig. 3): Q/K/V and the first
 * MLP matrix column-parallel, the attention output and second MLP matrix row-parallel, an all-reduce after
 * each row-parallel product forward and after each column-parallel input gradient backward. With sequence
 * parallel (Korthikanti et al. 2022, section 4.2.2) each all-reduce becomes a reduce-scatter followed by an
 * all-gather before the next column-parallel product; only the local block of that product's input is
 * kept, so the backward gathers it again (the paper's extra all-gather, Megatron-LM's
 * LinearWithGradAccumulationAndAsyncCommunication). Context parallel gathers K and V over the cp group
 * forward (Llama 3, Dubey et al. 2024, section 3.3.2) and, keeping only the local blocks, again backward,
 * where the K and V gradients are reduce-scattered back to their owners. A model with experts has a
 * mixture-of-experts MLP (model/moe.ts) in place of the dense one.
 */
export interface LayerSaved {
  readonly xin: Tensor;
  readonly a: Tensor;
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  /** The softmax output; null under selective recomputation (computed again in the backward). */
  readonly probs: Tensor | null;
  readonly o: Tensor;
  readonly x1: Tensor;
  readonly b2: Tensor;
  readonly mlp: DenseMlpSaved | { readonly kind: "moe"; readonly saved: MoeSaved };
}

export interface DenseMlpSaved {
  readonly kind: "dense";
  /** MLP pre-activation(s): [up] for GeLU, [gate, up] for SwiGLU. */
  readonly pre: readonly Tensor[];
  /** Input of the second MLP matrix. */
  readonly act: Tensor;
}

/** Every tensor a layer keeps for its backward (the softmax output where it is kept). */
export function layerSavedTensors(s: LayerSaved): Tensor[] {
  const mlp = s.mlp.kind === "moe" ? moeSavedTensors(s.mlp.saved) : [...s.mlp.pre, s.mlp.act];
  return [s.xin, s.a, s.q, s.k, s.v, ...(s.probs === null ? [] : [s.probs]), s.o, s.x1, s.b2, ...mlp];
}

export function layerName(layer: number): string {
  return `layers.${layer}`;
}

function geometry(ctx: ModelContext): AttentionGeometry {
  const m = ctx.model;
  const heads = m.attentionHeads / ctx.tp.size;
  // Tensor parallel: this rank's query heads are the tp rank's block, and each keeps its own ALiBi slope.
  const alibi = m.positionEmbedding === "alibi" ? alibiSlopes(m.attentionHeads).slice(ctx.tp.rank * heads, (ctx.tp.rank + 1) * heads) : undefined;
  return { batch: ctx.batch, heads, kvHeads: m.kvHeads / ctx.tp.size, headDim: m.headDim, qPos0: ctx.pos0, ...(alibi === undefined ? {} : { alibi }) };
}


export function layerForward(ctx: ModelContext, p: UnitParams, layer: number, xin: Tensor): { out: Tensor; saved: LayerSaved } {
  const { tf, model } = ctx;
  const n = layerName(layer);
  const g = geometry(ctx);
  const d = model.headDim;
  const isRope = model.positionEmbedding === "rope";
  // What the layer keeps, through ctx.save, so it outlives the tidy; outside its container, which holds
  // tensors only (not null, nor the MoE route).
  let probs: Tensor | null = null;
  let saved: Omit<LayerSaved, "probs"> | undefined;
  const out = tf.tidy(() => {
    ctx.save(xin);
    const a = ctx.save(norm(tf, xin, p.get(`${n}.ln1.g`), p.maybe(`${n}.ln1.b`)));
    const aFull = gatherSp(ctx, a, "tp.layer");
    let q = linear(tf, aFull, p.get(`${n}.attn.q.w`), p.maybe(`${n}.attn.q.b`));
    let k = linear(tf, aFull, p.get(`${n}.attn.k.w`), p.maybe(`${n}.attn.k.b`));
    const v = ctx.save(linear(tf, aFull, p.get(`${n}.attn.v.w`), p.maybe(`${n}.attn.v.b`)));
    if (isRope) {
      q = rope(tf, q, ctx.pos0, ctx.batch, g.heads, d, false);
      k = rope(tf, k, ctx.pos0, ctx.batch, g.kvHeads, d, false);
    }
    ctx.save(q);
    ctx.save(k);
    const kAll = ctx.cp.size > 1 ? ctx.cp.allGather(k, "cp.kv") : k;
    const vAll = ctx.cp.size > 1 ? ctx.cp.allGather(v, "cp.kv") : v;
    const att = attention(tf, q, kAll, vAll, g);
    if (ctx.recomputeAttention !== true) probs = ctx.save(att.probs);
    const o = ctx.save(att.out);
    let y = reduceRow(ctx, linear(tf, o, p.get(`${n}.attn.o.w`), undefined), "tp.layer");
    const ob = p.maybe(`${n}.attn.o.b`);
    if (ob !== undefined) y = tf.add(y, ob);
    const x1 = ctx.save(tf.add(xin, y));
    const b2 = ctx.save(norm(tf, x1, p.get(`${n}.ln2.g`), p.maybe(`${n}.ln2.b`)));
    if (model.moe !== undefined) {
      const r = moeForward(ctx, p, n, b2);
      saved = { xin, a, q, k, v, o, x1, b2, mlp: { kind: "moe", saved: r.saved } };
      return tf.add(x1, r.z);
    }
    const bFull = gatherSp(ctx, b2, "tp.layer");
    const { pre, act } = mlpActivation(ctx, p, `${n}.mlp`, bFull);
    let z = reduceRow(ctx, linear(tf, act, p.get(`${n}.mlp.down.w`), undefined), "tp.layer");
    const db = p.maybe(`${n}.mlp.down.b`);
    if (db !== undefined) z = tf.add(z, db);
    saved = { xin, a, q, k, v, o, x1, b2, mlp: { kind: "dense", pre, act } };
    return tf.add(x1, z);
  });
  return { out, saved: { ...saved!, probs } };
}

function put(grads: Grads, name: string, t: Tensor | undefined): void {
  if (t !== undefined) grads.set(name, t);
}

export function layerBackward(ctx: ModelContext, p: UnitParams, layer: number, s: LayerSaved, dout: Tensor): { dx: Tensor; grads: Grads } {
  const { tf, model } = ctx;
  const n = layerName(layer);
  const g = geometry(ctx);
  const hasBias = model.linearBias;
  const qkvBias = model.linearBias || model.qkvBias;
  const isLayerNorm = model.norm === "layernorm";
  const grads: Grads = new Map();
  const dx = tf.tidy(() => {
    const db2 = s.mlp.kind === "moe" ? moeBackward(ctx, grads, p, n, s.mlp.saved, s.b2, dout) : denseMlpBackward(ctx, grads, p, n, s.mlp, s.b2, dout);
    const n2 = normBackward(tf, s.x1, p.get(`${n}.ln2.g`), db2, isLayerNorm);
    put(grads, `${n}.ln2.g`, tf.keep(n2.dg));
    put(grads, `${n}.ln2.b`, n2.db && tf.keep(n2.db));
    const dx1 = tf.add(dout, n2.dx);

    // Attention: y = o W_o (+ b) reduced over tp.
    const dyFull = gatherSp(ctx, dx1, "tp.layer");
    const dO = linearInputBackward(ctx, grads, `${n}.attn.o`, s.o, p.get(`${n}.attn.o.w`), dyFull, false);
    if (hasBias) put(grads, `${n}.attn.o.b`, tf.keep(tf.sum(dx1, 0)));
    const kAll = ctx.cp.size > 1 ? ctx.cp.allGather(s.k, "cp.kv") : s.k;
    const vAll = ctx.cp.size > 1 ? ctx.cp.allGather(s.v, "cp.kv") : s.v;
    // Selective recomputation: the scores again, from the kept Q and the keys gathered for the backward anyway.
    const probs = s.probs ?? attention(tf, s.q, kAll, vAll, g).probs;
    const att = attentionBackward(tf, s.q, kAll, vAll, probs, dO, g);
    let dk = ctx.cp.size > 1 ? ctx.cp.reduceScatter(att.dk, "cp.kv") : att.dk;
    const dv = ctx.cp.size > 1 ? ctx.cp.reduceScatter(att.dv, "cp.kv") : att.dv;
    let dq = att.dq;
    if (model.positionEmbedding === "rope") {
      dq = rope(tf, dq, ctx.pos0, ctx.batch, g.heads, g.headDim, true);
      dk = rope(tf, dk, ctx.pos0, ctx.batch, g.kvHeads, g.headDim, true);
    }
    const aFull = gatherSp(ctx, s.a, "tp.sp-regather");
    let daFull: Tensor | undefined;
    for (const [name, grad] of [["q", dq], ["k", dk], ["v", dv]] as const) {
      const dx = linearInputBackward(ctx, grads, `${n}.attn.${name}`, aFull, p.get(`${n}.attn.${name}.w`), grad, qkvBias);
      daFull = daFull === undefined ? dx : tf.add(daFull, dx);
    }
    const da = reduceRow(ctx, daFull!, "tp.layer");
    const n1 = normBackward(tf, s.xin, p.get(`${n}.ln1.g`), da, isLayerNorm);
    put(grads, `${n}.ln1.g`, tf.keep(n1.dg));
    put(grads, `${n}.ln1.b`, n1.db && tf.keep(n1.db));
    return tf.add(dx1, n1.dx);
  });
  return { dx, grads };
}

/** The dense MLP's backward, z = act W_down (+ b) reduced over tp: the gradient of its input b2 (the second norm's output). */
function denseMlpBackward(ctx: ModelContext, grads: Grads, p: UnitParams, n: string, s: DenseMlpSaved, b2: Tensor, dout: Tensor): Tensor {
  const { tf, model } = ctx;
  const dzFull = gatherSp(ctx, dout, "tp.layer");
  const dAct = linearInputBackward(ctx, grads, `${n}.mlp.down`, s.act, p.get(`${n}.mlp.down.w`), dzFull, false);
  if (model.linearBias) put(grads, `${n}.mlp.down.b`, tf.keep(tf.sum(dout, 0)));
  const bFull = gatherSp(ctx, b2, "tp.sp-regather");
  return reduceRow(ctx, mlpActivationBackward(ctx, grads, p, `${n}.mlp`, bFull, s.pre, dAct), "tp.layer");
}
