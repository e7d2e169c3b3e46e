import type { Tensor } from "@tensorflow/tfjs";
import type { GpuEfficiency, ModelSpec, Plan } from "../../spec/types.js";
import { backwardChunk, DeferredWeights, forwardChunk, weightChunk, type ParamProvider } from "../model/chunk.js";
import { soloGroup, type GroupOps, type ModelContext } from "../model/context.js";
import { initialParameters, TokenSource, tokenSlice } from "../model/data.js";
import { localShape, modelUnits } from "../model/layout.js";
import type { Tf } from "../model/ops.js";
import { passCostFrom, upperMedian } from "./stats.js";
import { embeddingBytes } from "../../planner/cost/compute.js";
import type { DeviceProfile } from "./profile.js";
import { accumulateGradient } from "../parallel/state.js";

/**
 * One transformer layer's three passes as the executor runs them under a split backward (ZB-H1, ZB-V):
 * the forward, B (input gradients, with the norm, bias and softmax work) and W (the weight gradients,
 * summed into the rank's float32 gradient as ModelState.accept sums them, then the micro-batch's tensors
 * freed, as run/pipeline.ts's W frees them).
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

/** A layer's forward + B + W seconds: measured (LayerPassSeconds) or priced (compute.ts LayerTimes). */
export function passesTotalSeconds(t: LayerPassSeconds): number {
  return t.forwardSeconds + t.backwardInputSeconds + t.backwardWeightSeconds;
}

/** Each pass's share of a layer's forward + B + W time (DeviceProfile.layerPasses.shares), as the cost model reads it. */
export type LayerPassShares = NonNullable<GpuEfficiency["layerPassShares"]>;

/**
 * Median seconds of each pass of `model`'s first layer on one rank for one micro-batch of `plan`, `repeats`
 * times after as many untimed rounds (the code warms up). Each pass ends with a read of its result, so its
 * kernels have run. With plan.tp > 1, tensor-parallel rank 0's share of the layer, its collectives moving
 * nothing (oneUnit; bench/tp-layer.ts compares it with the cost model).
 */
export function layerPassSeconds(tf: Tf, model: ModelSpec, plan: Plan, repeats: number): LayerPassSeconds {
  return unitPassSeconds(tf, model, plan, "layer", repeats);
}

/**
 * The same for `model`'s input embedding: its forward (the one-hot product and the position rows), B (the
 * position table's gradient) and W (the word table's, a one-hot product of the incoming rows), each table's
 * gradient summed into the rank's float32 gradient as ModelState sums it.
 */
export function embeddingPassSeconds(tf: Tf, model: ModelSpec, plan: Plan, repeats: number): LayerPassSeconds {
  return unitPassSeconds(tf, model, plan, "embed", repeats);
}

/**
 * The input embedding's measured cost (DeviceProfile.embedding): embeddingPassSeconds at each shape, its three
 * passes' sum against the cost model's bytes of both passes (compute.ts embeddingBytes), and the line through
 * them (stats.ts passCostFrom).
 */
export function embeddingCost(tf: Tf, shapes: readonly { shape: string; model: ModelSpec; plan: Plan }[], repeats: number): NonNullable<DeviceProfile["embedding"]> {
  const measured = shapes.map((s) => {
    const t = embeddingPassSeconds(tf, s.model, s.plan, repeats);
    const b = embeddingBytes(s.model, s.plan);
    return { shape: s.shape, bytes: b.forwardBytes + b.backwardBytes, seconds: passesTotalSeconds(t) };
  });
  return { ...passCostFrom(measured.map((m) => m.bytes), measured.map((m) => m.seconds)), measured };
}

function unitPassSeconds(tf: Tf, model: ModelSpec, plan: Plan, kind: "layer" | "embed", repeats: number): LayerPassSeconds {
  const { units, params, data, context, rows, dispose } = oneUnit(tf, model, plan, kind);
  // The weight gradients are summed into float32 buffers, as a rank's ModelState sums them (its W ends so).
  const accumulated = new Map([...params].map(([name, t]) => [name, new Float32Array(t.size)]));
  const provider: ParamProvider = {
    acquire: () => ({ get: (n) => params.get(n)!, maybe: (n) => params.get(n) }),
    release: () => {},
    accept: (_u, grads) => { for (const [name, t] of grads) accumulateGradient(tf, t, accumulated.get(name)!, 0); },
  };
  const times: [number[], number[], number[]] = [[], [], []];
  for (let round = 0; round < 2 * repeats; round++) {
    // The embedding takes token ids (data), not an input tensor, and gives no input gradient.
    const x = kind === "embed" ? null : tf.randomNormal([rows, model.hiddenSize], 0, 1, "float32", round);
    const dout = tf.randomNormal([rows, model.hiddenSize], 0, 1, "float32", round + 1);
    // Each pass frees what the pipeline's frees at its end (run/pipeline.ts): the forward its output once
    // sent, B the input gradient once sent, W the micro-batch's activations and what B kept for it.
    const t0 = performance.now();
    const fwd = forwardChunk(units, provider, x, data, context);
    fwd.output!.dataSync();
    fwd.output!.dispose();
    const t1 = performance.now();
    const deferred = new DeferredWeights(new Set(fwd.activations.kept), (t, into) => { into.push(tf.keep(t)); return t; });
    const dx = backwardChunk(units, provider, fwd.activations, dout, data, context([]), deferred);
    dx?.dataSync();
    dx?.dispose();
    const t2 = performance.now();
    weightChunk(tf, provider, deferred);
    for (const t of [...fwd.activations.kept, ...deferred.kept]) t.dispose();
    const t3 = performance.now();
    if (round >= repeats) [t1 - t0, t2 - t1, t3 - t2].forEach((ms, i) => times[i]!.push(ms / 1e3));
    x?.dispose();
    dout.dispose();
  }
  for (const t of params.values()) t.dispose();
  dispose();
  const [f, b, w] = times.map(upperMedian) as [number, number, number];
  return { forwardSeconds: f, backwardInputSeconds: b, backwardWeightSeconds: w };
}

/**
 * A tensor-parallel group of `size` that moves no data: each collective returns a tensor of the shape the
 * real one would (an all-gather `size` times the rows, a reduce-scatter 1/size of them, an all-reduce the
 * input's), a handle on one kept per shape, so no kernel runs. What a rank of a tp split computes between its
 * collectives can then be timed in one thread, without a partner's waits or the transfers (those are timed
 * apart: waits.ts, the collectives' bandwidth and latency). `dispose` frees the kept tensors.
 */
export function shapeOnlyGroup(tf: Tf, size: number): GroupOps & { dispose(): void } {
  const kept = new Map<string, Tensor>();
  const like = (shape: number[]) => {
    const key = shape.join("x");
    let t = kept.get(key);
    if (t === undefined) kept.set(key, (t = tf.keep(tf.zeros(shape))));
    return t.clone();
  };
  const rows = (x: Tensor, n: number) => like([n, ...x.shape.slice(1)]);
  return {
    size, rank: 0,
    allReduce: (x) => x.clone(),
    allReduceMax: (x) => x.clone(),
    allGather: (x) => rows(x, x.shape[0]! * size),
    reduceScatter: (x) => rows(x, x.shape[0]! / size),
    dispose: () => {
      for (const t of kept.values()) t.dispose();
      kept.clear();
    },
  };
}

/**
 * `model`'s first unit of `kind` on one rank, its parameters as tensors, one micro-batch of `plan`'s tokens
 * and a context for its passes. With plan.tp > 1, tensor-parallel rank 0's unit: its parameters the first
 * 1/tp of each split tensor (layout.ts localShape), its input this rank's rows (1/tp of the positions under
 * sequence parallel), its collectives a shapeOnlyGroup's.
 */
function oneUnit(tf: Tf, model: ModelSpec, plan: Plan, kind: "layer" | "embed" = "layer") {
  const all = modelUnits(model);
  const units = all.filter((u) => u.kind === kind).slice(0, 1);
  const specs = new Map(all.flatMap((u) => u.tensors).map((t) => [t.name, t]));
  const initial = new Map([...initialParameters(model, 1)].filter(([name]) => units[0]!.tensors.some((t) => t.name === name)));
  const local = (name: string, values: Float32Array) => {
    const spec = specs.get(name)!;
    return tf.tidy(() => tf.slice(tf.tensor(values, spec.shape as number[]), 0, localShape(spec, plan.tp)));
  };
  const tensors = () => new Map([...initial].map(([name, values]) => [name, local(name, values)]));
  const tokens = plan.seqLen;
  const batch = plan.microBatch;
  const data = new TokenSource(model, tokens, 1, batch).tokens(0, tokenSlice(plan, 0, 0, 0));
  const tp = plan.tp > 1 ? shapeOnlyGroup(tf, plan.tp) : { ...soloGroup(tf), dispose: () => {} };
  const sp = plan.tp > 1 && plan.sequenceParallel;
  const context = (kept: Tensor[]): ModelContext => ({
    tf, model, batch, tokens, pos0: 0, stepTokens: tokens * batch, tp, cp: soloGroup(tf), sp,
    save: (t) => { kept.push(tf.keep(t)); return t; },
  });
  return { units, params: tensors(), tensors, data, context, rows: (tokens * batch) / (sp ? plan.tp : 1), dispose: tp.dispose };
}

/**
 * Median seconds that one forward of `model`'s first layer takes more with its parameters as new tensors
 * than with tensors it has already multiplied by (TensorFlow.js's wasm backend creates and packs an
 * XNNPACK operator for each new weight: the executor's weights are new after every optimizer step, and
 * after every gather under ZeRO 3), `repeats` pairs after as many untimed ones; and the layer's GEMM
 * weight elements (its two-dimensional parameters), which the cost model prices it by
 * (GpuEfficiency.weightFirstUseSecondsPerParam). On the 2-core VM, 2026-11-24: a single 32 x 64 x 256
 * product took 80 us more with a new weight (247 against 327 us), 32 x 128 x 512 335 us more, about 5 ns
 * per weight element; a tiny-gpt layer's first forward in each pipelined step 0.37 ms more than its others.
 */
export function firstUseSeconds(tf: Tf, model: ModelSpec, plan: Plan, repeats: number): { seconds: number; params: number } {
  const { units, params, tensors, data, context, rows, dispose } = oneUnit(tf, model, plan);
  const provider = (p: Map<string, Tensor>): ParamProvider => ({
    acquire: () => ({ get: (n) => p.get(n)!, maybe: (n) => p.get(n) }),
    release: () => {},
    accept: (_u, grads) => { for (const t of grads.values()) t.dispose(); },
  });
  // Each forward on its own handle of x: what it keeps for a backward (its input among them) is freed after it.
  const forward = (p: Map<string, Tensor>, x: Tensor): number => {
    const input = x.clone();
    const t0 = performance.now();
    const r = forwardChunk(units, provider(p), input, data, context);
    r.output!.dataSync();
    const ms = performance.now() - t0;
    for (const t of [...r.activations.kept, r.output!, input]) t.dispose();
    return ms / 1e3;
  };
  const excess: number[] = [];
  for (let round = 0; round < 2 * repeats; round++) {
    const x = tf.randomNormal([rows, model.hiddenSize], 0, 1, "float32", round);
    const reused = forward(params, x);
    const fresh = tensors();
    const first = forward(fresh, x);
    for (const t of fresh.values()) t.dispose();
    x.dispose();
    if (round >= repeats) excess.push(first - reused);
  }
  for (const t of params.values()) t.dispose();
  dispose();
  const weights = [...params.values()].filter((t) => t.shape.length === 2).reduce((a, t) => a + t.size, 0);
  return { seconds: Math.max(0, upperMedian(excess)), params: weights };
}

/**
 * Seconds per GEMM weight element of a weight's first use, fitted through the origin to every measurement
 * (least squares: sum of seconds x params over sum of params squared).
 */
export function firstUsePerParam(samples: readonly { readonly seconds: number; readonly params: number }[]): number {
  if (samples.length === 0) throw new RangeError("weight first use: no measurement");
  const xy = samples.reduce((a, s) => a + s.seconds * s.params, 0);
  const xx = samples.reduce((a, s) => a + s.params * s.params, 0);
  return xx > 0 ? xy / xx : 0;
}

/** The shares of each measurement's three passes, their median over the measurements, summing to 1. */
export function passShares(samples: readonly LayerPassSeconds[]): LayerPassShares {
  if (samples.length === 0) throw new RangeError("layer pass shares: no measurement");
  const share = (pick: (s: LayerPassSeconds) => number) =>
    upperMedian(samples.map((s) => pick(s) / passesTotalSeconds(s)));
  const f = share((s) => s.forwardSeconds);
  const b = share((s) => s.backwardInputSeconds);
  const w = share((s) => s.backwardWeightSeconds);
  const sum = f + b + w;
  return { forward: f / sum, backwardInput: b / sum, backwardWeight: w / sum };
}
