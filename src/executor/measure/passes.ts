import type { Tensor } from "@tensorflow/tfjs";
import type { GpuEfficiency, ModelSpec, Plan } from "../../spec/types.js";
import { backwardChunk, DeferredWeights, forwardChunk, weightChunk, type ParamProvider } from "../model/chunk.js";
import { soloGroup, type ModelContext } from "../model/context.js";
import { initialParameters, TokenSource, tokenSlice } from "../model/data.js";
import { modelUnits } from "../model/layout.js";
import type { Tf } from "../model/ops.js";
import { upperMedian } from "./stats.js";

/**
 * One transformer layer's three passes as the executor runs them under a split backward (ZB-H1, ZB-V):
 * the forward, B (input gradients, with the norm, bias and softmax work) and W (the weight gradients).
 * Their split differs from the roofline's: TensorFlow.js's wasm backend runs each kernel to its end before
 * the next is issued, B issues about 100 kernels a layer against the forward's 57 and W's 12 (counted with
 * tf.profile on tiny-gpt's layer), and B transposes each weight before its product where the forward
 * multiplies by the weight the backend has already packed. Measured on the 2-core VM, h64 s32: F 0.86 ms,
 * B 1.69, W 0.33; h128 s32: F 1.37, B 3.16, W 0.68 (the cost model's split at the whole-step fit:
 * F 1.00, B 1.26, W 0.59 for the first).
 */
export interface LayerPassSeconds {
  readonly forwardSeconds: number;
  readonly backwardInputSeconds: number;
  readonly backwardWeightSeconds: number;
}

/** Each pass's share of a layer's forward + B + W time (DeviceProfile.layerPasses.shares), as the cost model reads it. */
export type LayerPassShares = NonNullable<GpuEfficiency["layerPassShares"]>;

/**
 * Median seconds of each pass of `model`'s first layer on one rank for one micro-batch of `plan`, `repeats`
 * times after as many untimed rounds (the code warms up). Each pass ends with a read of its result, so its
 * kernels have run.
 */
export function layerPassSeconds(tf: Tf, model: ModelSpec, plan: Plan, repeats: number): LayerPassSeconds {
  const all = modelUnits(model);
  const units = all.filter((u) => u.kind === "layer").slice(0, 1);
  const specs = new Map(all.flatMap((u) => u.tensors).map((t) => [t.name, t]));
  const params = new Map([...initialParameters(model, 1)].filter(([name]) => units[0]!.tensors.some((t) => t.name === name))
    .map(([name, data]) => [name, tf.tensor(data, specs.get(name)!.shape as number[])]));
  const provider: ParamProvider = {
    acquire: () => ({ get: (n) => params.get(n)!, maybe: (n) => params.get(n) }),
    release: () => {},
    accept: (_u, grads) => { for (const t of grads.values()) t.dispose(); },
  };
  const tokens = plan.seqLen;
  const batch = plan.microBatch;
  const data = new TokenSource(model, tokens, 1, batch).tokens(0, tokenSlice(plan, 0, 0, 0));
  const context = (kept: Tensor[]): ModelContext => ({
    tf, model, batch, tokens, pos0: 0, stepTokens: tokens * batch, tp: soloGroup(tf), cp: soloGroup(tf), sp: false,
    save: (t) => { kept.push(tf.keep(t)); return t; },
  });
  const times: [number[], number[], number[]] = [[], [], []];
  for (let round = 0; round < 2 * repeats; round++) {
    const x = tf.randomNormal([tokens * batch, model.hiddenSize], 0, 1, "float32", round);
    const dout = tf.randomNormal([tokens * batch, model.hiddenSize], 0, 1, "float32", round + 1);
    const t0 = performance.now();
    const fwd = forwardChunk(units, provider, x, data, context);
    fwd.output!.dataSync();
    const t1 = performance.now();
    const deferred = new DeferredWeights(new Set(fwd.activations.kept), (t, into) => { into.push(tf.keep(t)); return t; });
    const dx = backwardChunk(units, provider, fwd.activations, dout, data, context([]), deferred)!;
    dx.dataSync();
    const t2 = performance.now();
    weightChunk(tf, provider, deferred);
    const t3 = performance.now();
    if (round >= repeats) [t1 - t0, t2 - t1, t3 - t2].forEach((ms, i) => times[i]!.push(ms / 1e3));
    for (const t of [...fwd.activations.kept, ...deferred.kept, fwd.output!, dx]) t.dispose();
  }
  for (const t of params.values()) t.dispose();
  const [f, b, w] = times.map(upperMedian) as [number, number, number];
  return { forwardSeconds: f, backwardInputSeconds: b, backwardWeightSeconds: w };
}

/** The shares of each measurement's three passes, their median over the measurements, summing to 1. */
export function passShares(samples: readonly LayerPassSeconds[]): LayerPassShares {
  if (samples.length === 0) throw new RangeError("layer pass shares: no measurement");
  const share = (pick: (s: LayerPassSeconds) => number) =>
    upperMedian(samples.map((s) => pick(s) / (s.forwardSeconds + s.backwardInputSeconds + s.backwardWeightSeconds)));
  const f = share((s) => s.forwardSeconds);
  const b = share((s) => s.backwardInputSeconds);
  const w = share((s) => s.backwardWeightSeconds);
  const sum = f + b + w;
  return { forward: f / sum, backwardInput: b / sum, backwardWeight: w / sum };
}
