import type { Tensor } from "@tensorflow/tfjs";
import type { Grads, ModelContext, UnitParams } from "./context.js";
import { gelu, geluBackward, linear, linearInputBackward, swiglu, swigluBackward } from "./ops.js";

/**
 * An MLP's first half on x, the dense layer's (model/layer.ts) and every expert's (model/moe.ts): the first
 * matrix `${prefix}.up` (and SwiGLU's gate, `${prefix}.gate`) and the activation, its pre-activation(s) and
 * activation kept for the backward through ctx.save. The second matrix is the caller's (where its bias goes
 * and what reduces its output differ).
 */
export function mlpActivation(ctx: ModelContext, p: UnitParams, prefix: string, x: Tensor): { pre: Tensor[]; act: Tensor } {
  const { tf } = ctx;
  const up = ctx.save(linear(tf, x, p.get(`${prefix}.up.w`), p.maybe(`${prefix}.up.b`)));
  if (ctx.model.mlp !== "swiglu") return { pre: [up], act: ctx.save(gelu(tf, up)) };
  const gate = ctx.save(linear(tf, x, p.get(`${prefix}.gate.w`), p.maybe(`${prefix}.gate.b`)));
  return { pre: [gate, up], act: ctx.save(swiglu(tf, gate, up)) };
}

/** Back through mlpActivation: x's gradient from the activation's, dAct; the first matrices' gradients go to `grads`. */
export function mlpActivationBackward(ctx: ModelContext, grads: Grads, p: UnitParams, prefix: string, x: Tensor, pre: readonly Tensor[], dAct: Tensor): Tensor {
  const { tf } = ctx;
  const hasBias = ctx.model.linearBias;
  if (ctx.model.mlp !== "swiglu") return linearInputBackward(ctx, grads, `${prefix}.up`, x, p.get(`${prefix}.up.w`), geluBackward(tf, pre[0]!, dAct), hasBias);
  const { da, du } = swigluBackward(tf, pre[0]!, pre[1]!, dAct);
  return tf.add(linearInputBackward(ctx, grads, `${prefix}.gate`, x, p.get(`${prefix}.gate.w`), da, hasBias),
    linearInputBackward(ctx, grads, `${prefix}.up`, x, p.get(`${prefix}.up.w`), du, hasBias));
}
