/**
 * Adam (Kingma & Ba 2015, algorithm 1, with bias correction), element-wise over float32 arrays, so any
 * shard of the parameters updates exactly as the same elements of the whole would.
 */
export interface AdamConfig {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}

/**
 * Defaults: the paper's betas; a learning rate large enough that a tiny model's loss visibly falls in five
 * steps; epsilon 1e-6 rather than the paper's 1e-8, because a gradient that is zero in exact arithmetic
 * (the key bias: softmax ignores a shift common to all keys) comes out as rounding noise of about 1e-9,
 * which Adam with epsilon 1e-8 would turn into updates of the learning rate's size whose sign depends on
 * the summation order, that is, on the plan.
 */
export const DEFAULT_ADAM: AdamConfig = { learningRate: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-6 };

export interface AdamState {
  readonly m: Float32Array;
  readonly v: Float32Array;
}

export function adamState(n: number): AdamState {
  return { m: new Float32Array(n), v: new Float32Array(n) };
}

/** One update of `params` in place from `grads`; `step` counts from 1. */
export function adamStep(params: Float32Array, grads: Float32Array, state: AdamState, step: number, c: AdamConfig): void {
  const { m, v } = state;
  const correct1 = 1 - c.beta1 ** step;
  const correct2 = 1 - c.beta2 ** step;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i]!;
    const mi = c.beta1 * m[i]! + (1 - c.beta1) * g;
    const vi = c.beta2 * v[i]! + (1 - c.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i]! - (c.learningRate * (mi / correct1)) / (Math.sqrt(vi / correct2) + c.epsilon);
  }
}
