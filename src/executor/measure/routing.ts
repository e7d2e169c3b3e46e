import type { Tensor } from "@tensorflow/tfjs";
import type { ModelSpec, Plan } from "../../spec/types.js";
import { moeRoutingBytes } from "../../planner/cost/moe-routing.js";
import { combine, combineBackward, dispatch, dispatchBackward, softmaxBackward, type Route } from "../model/routing.js";
import type { Tf } from "../model/ops.js";
import type { LayerPassSeconds } from "./passes.js";
import { passCostFrom, upperMedian, type MeasuredPassCost } from "./stats.js";

/**
 * Median seconds of a mixture of experts' routing on one rank for one micro-batch of `plan` (model.moe
 * required), as model/moe.ts runs it with its experts and router left out (their GEMMs are priced as GEMMs):
 * forward, the router's softmax, the route, the dispatch into the experts' buffers, their concatenation
 * (the experts' outputs stacked, as moe.ts stacks them without expert parallelism) and the combine; B, the
 * combine's backward, the dispatch's and the softmax's. `repeats` times after as many untimed rounds; each
 * pass ends with a read of its results, so its kernels have run. W has no routing work.
 */
export function routingPassSeconds(tf: Tf, model: ModelSpec, plan: Plan, repeats: number): LayerPassSeconds {
  const moe = model.moe;
  if (moe === undefined) throw new Error(`internal: routing timed on ${model.name}, which has no experts`);
  const tokens = plan.seqLen / plan.cp;
  const rows = tokens * plan.microBatch;
  const times: [number[], number[]] = [[], []];
  for (let round = 0; round < 2 * repeats; round++) {
    const kept: Tensor[] = [];
    const keep = <T extends Tensor>(t: T): T => { kept.push(tf.keep(t)); return t; };
    const logits = keep(tf.randomNormal([rows, moe.experts], 0, 1, "float32", round));
    const x = keep(tf.randomNormal([rows, model.hiddenSize], 0, 1, "float32", round + 1));
    const dz = keep(tf.randomNormal([rows, model.hiddenSize], 0, 1, "float32", round + 2));
    const t0 = performance.now();
    let forward: { probs: Tensor; route: Route; out: Tensor } | undefined;
    tf.tidy(() => {
      const probs = keep(tf.softmax(logits));
      const { route, buffers } = dispatch(tf, probs, x, plan.seqLen, plan.microBatch, moe.topK);
      const out = keep(tf.concat(buffers, 0));
      combine(tf, probs, route, out).dataSync();
      forward = { probs, route, out };
    });
    const t1 = performance.now();
    const { probs, route, out } = forward!;
    tf.tidy(() => {
      const { dBuffers, dProbs } = combineBackward(tf, probs, route, out, dz);
      const dx = dispatchBackward(tf, route, tf.concat(dBuffers, 0));
      const dLogits = softmaxBackward(tf, probs, dProbs);
      dx.dataSync();
      dLogits.dataSync();
    });
    const t2 = performance.now();
    for (const t of kept) t.dispose();
    if (round >= repeats) {
      times[0].push((t1 - t0) / 1e3);
      times[1].push((t2 - t1) / 1e3);
    }
  }
  return { forwardSeconds: upperMedian(times[0]), backwardInputSeconds: upperMedian(times[1]), backwardWeightSeconds: 0 };
}

/**
 * The routing's measured cost (DeviceProfile.moeRouting): routingPassSeconds at each shape (a fit shape
 * with fit-plan.ts FIT_EXPERTS), its two passes' sum against the cost model's bytes of both
 * (planner/cost/moe-routing.ts moeRoutingBytes), and the line through them (stats.ts passCostFrom).
 */
export function routingCost(tf: Tf, shapes: readonly { shape: string; model: ModelSpec; plan: Plan }[], repeats: number): MeasuredPassCost {
  const measured = shapes.map((s) => {
    const t = routingPassSeconds(tf, s.model, s.plan, repeats);
    const b = moeRoutingBytes(s.model, s.plan);
    return { shape: s.shape, bytes: b.forwardBytes + b.backwardBytes, seconds: t.forwardSeconds + t.backwardInputSeconds };
  });
  return { ...passCostFrom(measured.map((m) => m.bytes), measured.map((m) => m.seconds)), measured };
}
