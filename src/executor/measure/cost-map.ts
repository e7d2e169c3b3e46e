import { gradientBytesPerParam, PARAM_BYTES } from "../../planner/cost/memory.js";
import { planCosts } from "../../planner/cost/stages.js";
import { estimate } from "../../planner/cost/estimate.js";
import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { COMM_KINDS, type CommKind } from "../comm/fabric.js";

/**
 * The cost model's bytes per GPU per step, as element counts: the cost model prices 16-bit training
 * (activations and weights 2 bytes per element, gradients `gradientBytesPerParam`), the executor runs
 * float32 (4 bytes everywhere), so the two agree on elements, not bytes. tp, cp, pp and ep traffic is
 * activations: bytes / 2. Data-parallel traffic mixes gradients and weights, so it is taken apart by
 * ZeRO stage from the per-stage costs (planner/cost/communication.ts dpCosts). Parameter servers: the
 * push of gradients.
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
  out.dp = Math.max(0, ...costs.stages.map((s) => {
    const d = s.dp;
    const reduce = d.reduceOnce.bytes / g;
    const gather = d.gatherOnce.bytes / PARAM_BYTES;
    const forward = d.perMicroBatchForward.bytes / PARAM_BYTES;
    // ZeRO-3's backward is a weight all-gather (the forward's again) plus a gradient reduce-scatter.
    const backward = plan.zero === 3
      ? forward + (d.perMicroBatchBackward.bytes - d.perMicroBatchForward.bytes) / g
      : d.perMicroBatchBackward.bytes / g;
    return reduce + gather + m * (forward + backward);
  }));
  return out;
}
