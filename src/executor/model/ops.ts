import type * as TF from "@tensorflow/tfjs";
import type { Tensor } from "@tensorflow/tfjs";
import type { Grads, ModelContext } from "./context.js";

/**
 * Forward and backward of the decoder's building blocks, written out by hand over TensorFlow.js ops so
 * that the executor decides what each layer keeps for its backward (the tensors Korthikanti et al. 2022,
 * section 4.1, count) and can put collectives between any two ops. Rows are tokens, columns features.
 */
export type Tf = typeof TF;

/** Epsilon of LayerNorm and RMSNorm, as GPT-2 and Llama use (1e-5; HF GPT2Config.layer_norm_epsilon). */
export const NORM_EPS = 1e-5;

/**
 * A 2-D product with either operand transposed, the transpose done by its own kernel: TensorFlow.js's
 * wasm backend runs a product with transposeA or transposeB 5-10 times slower than the transpose and the
 * plain product together (measured on the development machine, src/executor/TIME-RECORD.md "Kernels": a
 * [32 x 64]^T [32 x 256] weight gradient 779 us with the flag, 84 us as transpose + product; the plain
 * forward product 95 us). The backward's products all have a transposed operand.
 */
export function product(tf: Tf, a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
  return tf.tidy(() => tf.matMul((transposeA ? tf.transpose(a) : a) as TF.Tensor2D, (transposeB ? tf.transpose(b) : b) as TF.Tensor2D));
}

/**
 * The weight gradient x^T dy of a linear: at once into `grads`, or, in a split backward (ZB-H1), later in
 * the W pass from x and dy kept until then.
 */
export function weightGradient(ctx: ModelContext, grads: Grads, name: string, x: Tensor, dy: Tensor): void {
  const { tf } = ctx;
  if (ctx.weights === undefined) {
    grads.set(name, tf.keep(product(tf, x, dy, true, false)));
    return;
  }
  const xs = ctx.weights.keep(x);
  const dys = ctx.weights.keep(dy);
  ctx.weights.later(name, () => product(tf, xs, dys, true, false));
}

/**
 * A linear's backward: dx = dy W^T and db (the column sums of dy) now, dW = x^T dy through
 * weightGradient (now, or in a split backward's W pass).
 */
export function linearInputBackward(ctx: ModelContext, grads: Grads, prefix: string, x: Tensor, w: Tensor, dy: Tensor, hasBias: boolean): Tensor {
  const { tf } = ctx;
  if (hasBias) grads.set(`${prefix}.b`, tf.keep(tf.sum(dy, 0)));
  weightGradient(ctx, grads, `${prefix}.w`, x, dy);
  return product(tf, dy, w, false, true);
}

/** y = x W (+ b). */
export function linear(tf: Tf, x: Tensor, w: Tensor, b: Tensor | undefined): Tensor {
  return tf.tidy(() => {
    const y = tf.matMul(x as TF.Tensor2D, w as TF.Tensor2D);
    return b === undefined ? y : tf.add(y, b);
  });
}


/** The normalised rows and the reciprocal standard deviation (LayerNorm: Ba et al. 2016; RMSNorm: Zhang & Sennrich 2019). */
function normalise(tf: Tf, x: Tensor, layer: boolean): { xhat: Tensor; rstd: Tensor } {
  if (layer) {
    const mu = tf.mean(x, 1, true);
    const xc = tf.sub(x, mu);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), 1, true), NORM_EPS));
    return { xhat: tf.mul(xc, rstd), rstd };
  }
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), NORM_EPS));
  return { xhat: tf.mul(x, rstd), rstd };
}

export function norm(tf: Tf, x: Tensor, g: Tensor, b: Tensor | undefined): Tensor {
  return tf.tidy(() => {
    const y = tf.mul(normalise(tf, x, b !== undefined).xhat, g);
    return b === undefined ? y : tf.add(y, b);
  });
}

export interface NormGrads {
  readonly dx: Tensor;
  readonly dg: Tensor;
  readonly db: Tensor | undefined;
}

/**
 * Backward from the saved input only (the statistics are recomputed, as the activation count assumes):
 * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) for LayerNorm, without the mean term for RMSNorm.
 */
export function normBackward(tf: Tf, x: Tensor, g: Tensor, dy: Tensor, layer: boolean): NormGrads {
  return tf.tidy(() => {
    const { xhat, rstd } = normalise(tf, x, layer);
    const dxhat = tf.mul(dy, g);
    let inner = tf.sub(dxhat, tf.mul(xhat, tf.mean(tf.mul(dxhat, xhat), 1, true)));
    if (layer) inner = tf.sub(inner, tf.mean(dxhat, 1, true));
    return { dx: tf.mul(inner, rstd), dg: tf.sum(tf.mul(dy, xhat), 0), db: layer ? tf.sum(dy, 0) : undefined };
  }) as NormGrads;
}

/** GeLU, tanh approximation (Hendrycks & Gimpel 2016, eq. in section 2; GPT-2's "gelu_new"). */
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** tanh(c (u + a u^3)); the cube as products (the wasm backend's Pow costs 5x two Multiplies here). */
function geluTanh(tf: Tf, u: Tensor): Tensor {
  return tf.tanh(tf.mul(tf.add(u, tf.mul(tf.mul(tf.square(u), u), GELU_A)), GELU_C));
}

export function gelu(tf: Tf, u: Tensor): Tensor {
  return tf.tidy(() => {
    const th = geluTanh(tf, u);
    return tf.mul(tf.mul(u, 0.5), tf.add(th, 1));
  });
}

export function geluBackward(tf: Tf, u: Tensor, dy: Tensor): Tensor {
  return tf.tidy(() => {
    const th = geluTanh(tf, u);
    const left = tf.mul(tf.add(th, 1), 0.5);
    const dInner = tf.mul(tf.add(tf.mul(tf.square(u), 3 * GELU_A), 1), GELU_C);
    const right = tf.mul(tf.mul(tf.mul(u, 0.5), tf.sub(1, tf.square(th))), dInner);
    return tf.mul(dy, tf.add(left, right));
  });
}

/** SwiGLU's product silu(a) * u (Shazeer 2020). */
export function swiglu(tf: Tf, a: Tensor, u: Tensor): Tensor {
  return tf.tidy(() => tf.mul(tf.mul(a, tf.sigmoid(a)), u));
}

export function swigluBackward(tf: Tf, a: Tensor, u: Tensor, dy: Tensor): { da: Tensor; du: Tensor } {
  return tf.tidy(() => {
    const s = tf.sigmoid(a);
    const silu = tf.mul(a, s);
    const dsilu = tf.mul(s, tf.add(1, tf.mul(a, tf.sub(1, s))));
    return { da: tf.mul(tf.mul(dy, u), dsilu), du: tf.mul(dy, silu) };
  }) as { da: Tensor; du: Tensor };
}

/**
 * Rotary position embedding (Su et al. 2021, RoFormer, eq. 34, in the rotate-half form of GPT-NeoX and
 * Llama) with base 10000, on rows laid out position-major ([positions, batch] flattened).
 */
export const ROPE_BASE = 10000;

function ropeTables(tf: Tf, pos0: number, len: number, d: number): { cos: Tensor; sin: Tensor } {
  const half = d / 2;
  const cos = new Float32Array(len * d);
  const sin = new Float32Array(len * d);
  for (let p = 0; p < len; p++) {
    for (let i = 0; i < half; i++) {
      const angle = (pos0 + p) / ROPE_BASE ** ((2 * i) / d);
      cos[p * d + i] = cos[p * d + i + half] = Math.cos(angle);
      sin[p * d + i] = sin[p * d + i + half] = Math.sin(angle);
    }
  }
  return { cos: tf.tensor(cos, [len, 1, 1, d]), sin: tf.tensor(sin, [len, 1, 1, d]) };
}

/** Applies (sign 1) or undoes the transpose of (sign -1) the rotation of x: [len*batch, heads*d]. */
export function rope(tf: Tf, x: Tensor, pos0: number, batch: number, heads: number, d: number, transpose: boolean): Tensor {
  return tf.tidy(() => {
    const len = x.shape[0]! / batch;
    const x4 = tf.reshape(x, [len, batch, heads, d]);
    const { cos, sin } = ropeTables(tf, pos0, len, d);
    const [x1, x2] = tf.split(transpose ? tf.mul(x4, sin) : x4, 2, 3) as [Tensor, Tensor];
    // rotate_half(z) = [-z2, z1]; its transpose maps [z1, z2] to [z2, -z1].
    const rotated = transpose ? tf.concat([x2, tf.neg(x1)], 3) : tf.concat([tf.neg(x2), x1], 3);
    const y = transpose ? tf.add(tf.mul(x4, cos), rotated) : tf.add(tf.mul(x4, cos), tf.mul(rotated, sin));
    return tf.reshape(y, [len * batch, heads * d]);
  });
}

/**
 * A tensor holding a copy of `data`, which may be a view of a shared-memory slot that a later collective
 * overwrites. The wasm backend copies values into its heap when the tensor is made (tfjs-backend-wasm
 * backend_wasm.js write/move); the CPU and native backends keep the array they are given, so for them the
 * view is copied first.
 */
export function tensorFromShared(tf: Tf, data: Float32Array, shape: number[]): Tensor {
  return tf.tensor(tf.getBackend() === "wasm" ? data : data.slice(), shape);
}

/** The wasm backend's public reader of a tensor's values where they lie (its own kernels read inputs with it). */
interface HeapReader {
  typedArrayFromHeap(t: { shape: number[]; dtype: string; dataId: object }): Float32Array;
}

/**
 * A float32 tensor's values for a caller that copies them out at once (into shared memory, or summed into
 * a buffer), with no TensorFlow.js call in between. On the wasm backend this is a view of its heap
 * (tfjs-backend-wasm backend_wasm.js typedArrayFromHeap), which the next TensorFlow.js call may invalidate
 * by growing the heap; elsewhere it is dataSync. dataSync on the wasm backend slices the heap into a new
 * buffer, and allocating that buffer cost more than the copy itself: taking 4 to 64 MiB into a
 * shared-memory slot ran 3-14x faster from the view (src/executor/README.md, Speed).
 */
export function readNow(tf: Tf, x: Tensor): Float32Array {
  if (x.dtype === "float32" && tf.getBackend() === "wasm") {
    const backend = tf.backend() as unknown as Partial<HeapReader>;
    if (typeof backend.typedArrayFromHeap === "function") return backend.typedArrayFromHeap(x as unknown as { shape: number[]; dtype: string; dataId: object });
  }
  return x.dataSync() as Float32Array;
}
