import type { Tensor } from "@tensorflow/tfjs";
import type { ModelSpec } from "../../spec/types.js";
import { residualPositions, type Grads, type ModelContext, type UnitParams } from "./context.js";
import { norm, normBackward, product, weightGradient, type Tf } from "./ops.js";

/**
 * The embedding and the head (final norm, output layer, loss), vocabulary-parallel over tp (Shoeybi et al.
 * 2019, section 3): each tp rank holds V/tp rows of the word embedding and V/tp columns of the output
 * layer. The embedding is a one-hot matrix product, whose gradient is another product (TensorFlow.js's
 * wasm backend has no gradient for gather); the loss is Megatron-LM's vocabulary-parallel cross-entropy
 * (core/tensor_parallel/cross_entropy.py): an all-reduce of the row maxima, of the sums of exponentials
 * and of the target logits, each one float per token.
 */

/** Rows of one-hot codes for the ids that fall into this rank's vocabulary block; other rows are zero. */
function oneHot(tf: Tf, ids: Int32Array, vocabLocal: number, offset: number): Tensor {
  if (vocabLocal >= 2) {
    // The backend's kernel: a target outside this rank's vocabulary block gives a row of zeros. Built in
    // JavaScript instead, the tokens x V/tp floats were a fresh array at every pass (256 KB for 256 tokens
    // of tiny-gpt), and the loss's time ran in spells 3-4x apart (measure/loss.ts). Made int32 and cast:
    // tfjs-backend-wasm 4.22's OneHot asked for float32 writes the integer 1's bits (1.4e-45).
    return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(ids.map((id) => id - offset), "int32"), vocabLocal), "float32"));
  }
  const m = new Float32Array(ids.length * vocabLocal); // tf.oneHot wants a depth of 2 or more
  ids.forEach((id, row) => {
    const col = id - offset;
    if (col >= 0 && col < vocabLocal) m[row * vocabLocal + col] = 1;
  });
  return tf.tensor(m, [ids.length, vocabLocal]);
}

function vocabBlock(ctx: Pick<CrossEntropyContext, "tp" | "model">): { local: number; offset: number } {
  const local = ctx.model.vocabSize / ctx.tp.size;
  return { local, offset: ctx.tp.rank * local };
}

/**
 * The embedding's output, and, where the model has a norm after the embedding (BLOOM's), that norm's
 * input, kept for its backward (through ctx.save: an activation).
 */
export function embedForward(ctx: ModelContext, p: UnitParams, ids: Int32Array): { out: Tensor; normIn?: Tensor } {
  const { tf } = ctx;
  const h = ctx.model.hiddenSize;
  let normIn: Tensor | undefined;
  const out = tf.tidy(() => {
    const { local, offset } = vocabBlock(ctx);
    const partial = tf.matMul(oneHot(tf, ids, local, offset), p.get("embed.word"));
    let x = ctx.sp ? ctx.tp.reduceScatter(partial, "tp.embedding") : ctx.tp.allReduce(partial, "tp.embedding");
    const pos = p.maybe("embed.pos");
    if (pos !== undefined) {
      const { first, count } = residualPositions(ctx);
      const rows = tf.reshape(tf.slice(pos, [first, 0], [count, h]), [count, 1, h]);
      x = tf.reshape(tf.add(tf.reshape(x, [count, ctx.batch, h]), rows), [count * ctx.batch, h]);
    }
    const g = p.maybe("embed.norm.g");
    if (g === undefined) return x;
    normIn = ctx.save(x);
    return norm(tf, x, g, p.maybe("embed.norm.b"));
  });
  return normIn === undefined ? { out } : { out, normIn };
}

export function embedBackward(ctx: ModelContext, p: UnitParams, ids: Int32Array, given: Tensor, normIn?: Tensor): Grads {
  const { tf } = ctx;
  const h = ctx.model.hiddenSize;
  const grads: Grads = new Map();
  tf.tidy(() => {
    // Through the norm after the embedding first, where there is one: its weight gradients now (as a layer's
    // norms, also under a split backward), and the embedding's output gradient for what follows.
    let dout = given;
    if (normIn !== undefined) {
      const n = normBackward(tf, normIn, p.get("embed.norm.g"), given, ctx.model.norm === "layernorm");
      grads.set("embed.norm.g", tf.keep(n.dg));
      if (n.db !== undefined) grads.set("embed.norm.b", tf.keep(n.db));
      dout = n.dx;
    }
    if (p.maybe("embed.pos") !== undefined) {
      const { first, count } = residualPositions(ctx);
      const rows = tf.sum(tf.reshape(dout, [count, ctx.batch, h]), 1);
      grads.set("embed.pos", tf.keep(tf.pad(rows, [[first, ctx.model.seqLen - first - count], [0, 0]])));
    }
    const dFull = ctx.sp ? ctx.tp.allGather(dout, "tp.embedding") : dout;
    const { local, offset } = vocabBlock(ctx);
    // oneHot^T dFull; a split backward (ZB-H1) keeps dFull and builds the one-hot rows again in W.
    const wordGradient = (d: Tensor) => product(tf, oneHot(tf, ids, local, offset), d, true, false);
    if (ctx.weights === undefined) grads.set("embed.word", tf.keep(wordGradient(dFull)));
    else {
      const kept = ctx.weights.keep(dFull);
      ctx.weights.later("embed.word", () => wordGradient(kept));
    }
  });
  return grads;
}

export interface HeadSaved {
  readonly x: Tensor;
  readonly f: Tensor;
  readonly probs: Tensor;
}

function outputWeight(ctx: ModelContext, p: UnitParams): { w: Tensor; tied: boolean } {
  return ctx.model.tiedEmbeddings ? { w: p.get("embed.word"), tied: true } : { w: p.get("head.w"), tied: false };
}

/** Returns this rank's share of the loss (sum over its tokens / stepTokens) and what the backward needs. */
export function headForward(ctx: ModelContext, p: UnitParams, x: Tensor, targets: Int32Array): { loss: number; saved: HeadSaved } {
  const { tf } = ctx;
  ctx.save(x);
  const f = ctx.save(norm(tf, x, p.get("final.norm.g"), p.maybe("final.norm.b")));
  const { w, tied } = outputWeight(ctx, p);
  const logits = tf.tidy(() => product(tf, ctx.sp ? ctx.tp.allGather(f, "tp.head") : f, w, false, tied));
  const ce = crossEntropyForward(ctx, logits, targets);
  return { loss: ce.loss, saved: { x, f, probs: ctx.save(ce.probs) } };
}

/** What the cross-entropy needs of the model context (the loss probe of calibrate gives a group of one). */
export type CrossEntropyContext = Pick<ModelContext, "tf" | "tp" | "stepTokens"> & { readonly model: Pick<ModelSpec, "vocabSize"> };

/**
 * The loss part of the head: this rank's block of logits to its share of the loss and the softmax kept for
 * the backward. Disposes `logits`; logit-sized temporaries are freed as soon as they are used (at most three
 * live at once), as an eager framework's reference counting would.
 */
export function crossEntropyForward(ctx: CrossEntropyContext, logits: Tensor, targets: Int32Array): { loss: number; probs: Tensor } {
  const { tf } = ctx;
  const { local, offset } = vocabBlock(ctx);
  const target = tf.tidy(() => ctx.tp.allReduce(tf.sum(tf.mul(logits, oneHot(tf, targets, local, offset)), 1), "tp.vocab-ce"));
  const max = tf.tidy(() => ctx.tp.allReduceMax(tf.max(logits, 1), "tp.vocab-ce"));
  const e = tf.tidy(() => tf.exp(tf.sub(logits, tf.reshape(max, [-1, 1]))));
  logits.dispose();
  const sumExp = tf.tidy(() => ctx.tp.allReduce(tf.sum(e, 1), "tp.vocab-ce"));
  const loss = tf.tidy(() => tf.sum(tf.sub(tf.add(tf.log(sumExp), max), target)).dataSync()[0] ?? 0) / ctx.stepTokens;
  const probs = tf.tidy(() => tf.div(e, tf.reshape(sumExp, [-1, 1])));
  for (const t of [e, sumExp, max, target]) t.dispose();
  return { loss, probs };
}

/** The gradient of the loss with respect to this rank's logits: (softmax - one-hot) / step tokens. */
export function crossEntropyBackward(ctx: CrossEntropyContext, probs: Tensor, targets: Int32Array): Tensor {
  const { tf } = ctx;
  const { local, offset } = vocabBlock(ctx);
  return tf.tidy(() => tf.div(tf.sub(probs, oneHot(tf, targets, local, offset)), ctx.stepTokens));
}

export function headBackward(ctx: ModelContext, p: UnitParams, s: HeadSaved, targets: Int32Array): { dx: Tensor; grads: Grads } {
  const { tf } = ctx;
  const grads: Grads = new Map();
  const dx = tf.tidy(() => {
    const dlogits = crossEntropyBackward(ctx, s.probs, targets);
    const fFull = ctx.sp ? ctx.tp.allGather(s.f, "tp.sp-regather") : s.f;
    const { w, tied } = outputWeight(ctx, p);
    if (tied) grads.set("embed.word", tf.keep(product(tf, dlogits, fFull, true, false)));
    else weightGradient(ctx, grads, "head.w", fFull, dlogits);
    const dfFull = product(tf, dlogits, w, false, !tied);
    const df = ctx.sp ? ctx.tp.reduceScatter(dfFull, "tp.head") : ctx.tp.allReduce(dfFull, "tp.head");
    const n = normBackward(tf, s.x, p.get("final.norm.g"), df, ctx.model.norm === "layernorm");
    grads.set("final.norm.g", tf.keep(n.dg));
    if (n.db !== undefined) grads.set("final.norm.b", tf.keep(n.db));
    return n.dx;
  });
  return { dx, grads };
}
