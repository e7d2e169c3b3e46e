import type { Tensor } from "@tensorflow/tfjs";
import type { Tf } from "./ops.js";

/**
 * Causal scaled dot-product attention (Vaswani et al. 2017, eq. 1) with grouped K/V heads (Ainslie et al.
 * 2023, GQA), unfused: the softmax output P (b x heads x queries x keys) is kept for the backward, as the
 * s x s term of Korthikanti et al. 2022 counts. Queries may be a slice of the sequence (context parallel):
 * query row i sits at position qPos0 + i, keys cover positions 0..keys-1.
 */
export interface AttentionGeometry {
  readonly batch: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Absolute position of the first query position. */
  readonly qPos0: number;
  /** ALiBi: the slope of each of this rank's query heads (alibiSlopes); absent without ALiBi. */
  readonly alibi?: readonly number[];
}

/**
 * ALiBi's slope for each of `heads` heads (Press et al. 2022, section 3): for a power of two n, the
 * geometric sequence starting at and multiplied by 2^(-8/n); otherwise that sequence for the largest power
 * of two p below n, followed by every other term (the odd powers) of the sequence for 2p, up to n heads in
 * all (the authors' code, and BLOOM's build_alibi_tensor).
 */
export function alibiSlopes(heads: number): number[] {
  const p = 2 ** Math.floor(Math.log2(heads));
  const first = Array.from({ length: p }, (_, i) => 2 ** ((-8 * (i + 1)) / p));
  const extra = Array.from({ length: Math.min(p, heads - p) }, (_, i) => 2 ** ((-8 * (2 * i + 1)) / (2 * p)));
  return [...first, ...extra];
}

/** [len*batch, heads*d] (position-major rows) to [batch, heads, len, d]. */
function toHeads(tf: Tf, x: Tensor, batch: number, heads: number, d: number): Tensor {
  const len = x.shape[0]! / batch;
  return tf.transpose(tf.reshape(x, [len, batch, heads, d]), [1, 2, 0, 3]);
}

function fromHeads(tf: Tf, x: Tensor): Tensor {
  const [batch, heads, len, d] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [2, 0, 1, 3]), [len * batch, heads * d]);
}

/** K/V heads repeated for the query heads that share them: [b, kvHeads, len, d] to [b, heads, len, d]. */
function expand(tf: Tf, x: Tensor, group: number): Tensor {
  if (group === 1) return x;
  const [b, kv, len, d] = x.shape as [number, number, number, number];
  return tf.reshape(tf.tile(tf.reshape(x, [b, kv, 1, len, d]), [1, 1, group, 1, 1]), [b, kv * group, len, d]);
}

function contract(tf: Tf, x: Tensor, group: number): Tensor {
  if (group === 1) return x;
  const [b, heads, len, d] = x.shape as [number, number, number, number];
  return tf.sum(tf.reshape(x, [b, heads / group, group, len, d]), 2);
}

/** Additive causal mask [queries, keys]: 0 where the key is at or before the query, -1e9 elsewhere. */
function causalMask(tf: Tf, queries: number, keys: number, qPos0: number): Tensor {
  const m = new Float32Array(queries * keys);
  for (let i = 0; i < queries; i++) for (let j = qPos0 + i + 1; j < keys; j++) m[i * keys + j] = -1e9;
  return tf.tensor(m, [queries, keys]);
}

/**
 * The causal mask with ALiBi's bias, [heads, queries, keys]: slope x (key position - query position) where
 * the key is at or before the query (0 at the query itself, more negative further back), -1e9 elsewhere.
 * The bias is a constant, so the backward is the one without it.
 */
function alibiMask(tf: Tf, slopes: readonly number[], queries: number, keys: number, qPos0: number): Tensor {
  const m = new Float32Array(slopes.length * queries * keys);
  slopes.forEach((slope, h) => {
    for (let i = 0; i < queries; i++) {
      const row = (h * queries + i) * keys;
      for (let j = 0; j < keys; j++) m[row + j] = j <= qPos0 + i ? slope * (j - qPos0 - i) : -1e9;
    }
  });
  return tf.tensor(m, [slopes.length, queries, keys]);
}

export interface AttentionOut {
  readonly out: Tensor;
  readonly probs: Tensor;
}

export function attention(tf: Tf, q: Tensor, k: Tensor, v: Tensor, g: AttentionGeometry): AttentionOut {
  return tf.tidy(() => {
    const d = g.headDim;
    const group = g.heads / g.kvHeads;
    const qh = toHeads(tf, q, g.batch, g.heads, d);
    const kh = expand(tf, toHeads(tf, k, g.batch, g.kvHeads, d), group);
    const vh = expand(tf, toHeads(tf, v, g.batch, g.kvHeads, d), group);
    const queries = qh.shape[2]!;
    const keys = kh.shape[2]!;
    const mask = g.alibi === undefined ? causalMask(tf, queries, keys, g.qPos0) : alibiMask(tf, g.alibi, queries, keys, g.qPos0);
    const scores = tf.add(tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(d)), mask);
    const probs = tf.softmax(scores);
    return { out: fromHeads(tf, tf.matMul(probs, vh)), probs };
  }) as AttentionOut;
}

export interface AttentionGrads {
  readonly dq: Tensor;
  readonly dk: Tensor;
  readonly dv: Tensor;
}

/** dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dP P)), dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d). */
export function attentionBackward(tf: Tf, q: Tensor, k: Tensor, v: Tensor, probs: Tensor, dout: Tensor, g: AttentionGeometry): AttentionGrads {
  return tf.tidy(() => {
    const d = g.headDim;
    const group = g.heads / g.kvHeads;
    const scale = 1 / Math.sqrt(d);
    const qh = toHeads(tf, q, g.batch, g.heads, d);
    const kh = expand(tf, toHeads(tf, k, g.batch, g.kvHeads, d), group);
    const vh = expand(tf, toHeads(tf, v, g.batch, g.kvHeads, d), group);
    const doh = toHeads(tf, dout, g.batch, g.heads, d);
    const dv = tf.matMul(probs, doh, true, false);
    const dp = tf.matMul(doh, vh, false, true);
    const ds = tf.mul(probs, tf.sub(dp, tf.sum(tf.mul(dp, probs), -1, true)));
    const dq = tf.mul(tf.matMul(ds, kh), scale);
    const dk = tf.mul(tf.matMul(ds, qh, true, false), scale);
    return { dq: fromHeads(tf, dq), dk: fromHeads(tf, contract(tf, dk, group)), dv: fromHeads(tf, contract(tf, dv, group)) };
  }) as AttentionGrads;
}
