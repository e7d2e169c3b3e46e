import { gradientBytesPerParam, PARAM_BYTES } from "../../planner/cost/memory.js";
import { ppSendsOfStage, spReplicatedGradCost, vocabCrossEntropyCost } from "../../planner/cost/communication.js";
import { planCosts } from "../../planner/cost/stages.js";
import { estimate } from "../../planner/cost/estimate.js";
import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { COMM_KINDS, type CommKind } from "../comm/fabric.js";
import { holdsHead } from "../../spec/virtual-stages.js";

/** Cross-entropy's all-reduces are fp32 in the cost model too (planner/cost/communication.ts vocabCrossEntropyCost). */
const FP32_BYTES = 4;

/**
 * The cost model's bytes per GPU per step, as element counts: the cost model prices 16-bit training
 * (activations and weights 2 bytes per element, gradients `gradientBytesPerParam`), the executor runs
 * float32 (4 bytes everywhere), so the two agree on elements, not bytes. tp, cp, pp and ep traffic is
 * activations: bytes / 2, except the cross-entropy's fp32 all-reduces (bytes / 4). Data-parallel traffic
 * mixes gradients and weights, so it is taken apart by ZeRO stage from the per-stage costs
 * (planner/cost/communication.ts dpCosts); the sequence-parallel sum of tp-replicated gradients, which the
 * cost model adds to the once-per-step reduction (spReplicatedGradCost), crosses the tp group, so it is
 * counted here as tp, in gradients (bytes / gradientBytesPerParam); so is a tied embedding's gradient sum,
 * which the cost model counts as pp (planner/cost/tied.ts). Parameter servers: the push of gradients.
 * Per kind, the busiest stage's figure (as the estimate's).
 */
export function costModelElements(model: ModelSpec, shape: ClusterShape, plan: Plan): Record<CommKind, number> {
  const e = estimate(model, shape, plan);
  const b = e.communication.bytesPerGpuPerStep;
  const g = gradientBytesPerParam(plan);
  const out = Object.fromEntries(COMM_KINDS.map((k) => [k, b[k] / PARAM_BYTES])) as Record<CommKind, number>;
  if (plan.parameterServers > 0) {
    out.dp = b.dp / g;
    return out;
  }
  const costs = planCosts(model, shape, plan);
  const m = costs.microBatches;
  const ce = vocabCrossEntropyCost(plan, costs.links).bytes;
  const perStage = costs.stages.map((s, i) => {
    const sync = spReplicatedGradCost(model, plan, costs.links, i).bytes;
    const last = holdsHead(plan, i);
    const tpActivations = m * (s.tp.forward.bytes + s.tp.backward.bytes - (last ? ce : 0));
    const tp = tpActivations / PARAM_BYTES + (last ? (m * ce) / FP32_BYTES : 0) + sync / g;
    const d = s.dp;
    const reduce = (d.reduceOnce.bytes - sync) / g;
    const gather = d.gatherOnce.bytes / PARAM_BYTES;
    const forward = d.perMicroBatchForward.bytes / PARAM_BYTES;
    // ZeRO-3's backward is a weight all-gather (the forward's again) plus a gradient reduce-scatter.
    const backward = plan.zero === 3
      ? forward + (d.perMicroBatchBackward.bytes - d.perMicroBatchForward.bytes) / g
      : d.perMicroBatchBackward.bytes / g;
    return { tp, dp: reduce + gather + m * (forward + backward) };
  });
  out.tp = Math.max(0, ...perStage.map((s) => s.tp));
  out.dp = Math.max(0, ...perStage.map((s) => s.dp));
  // Pipeline traffic is activations, but for a tied embedding's gradient sum (tied.ts), in gradients.
  out.pp = Math.max(0, ...costs.stages.map((s, i) => (m * ppSendsOfStage(plan, i) * costs.ppTransfer.bytes) / PARAM_BYTES + s.tiedSync.bytes / g));
  return out;
}
