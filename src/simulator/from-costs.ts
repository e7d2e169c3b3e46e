import type { DpCosts } from "../planner/cost/communication.js";
import { holdsHead, splitsBackward } from "../spec/virtual-stages.js";
import { planVPassRatios } from "../planner/cost/zb-v.js";
import { gradientBytesPerParam, lossBytes, PARAM_BYTES, stagePerMicroBatchBytes, stageWeightGradInputBytes } from "../planner/cost/memory.js";
import { achievedBytesPerSecond } from "../planner/cost/placement.js";
import type { PlanCosts } from "../planner/cost/stages.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import type { SimDp, SimInput, SimParameterServers, SimStage } from "./types.js";
import { counted } from "../math/digits.js";

/**
 * How a stage's data-parallel traffic overlaps (src/planner/cost/communication.ts dpCosts): ZeRO-0/1
 * reduce once (all-reduce or reduce-scatter) and ZeRO-1/2 gather once (all-gather of updated weights);
 * ZeRO-2 reduce-scatters every micro-batch; ZeRO-3 gathers before every forward and again before every
 * backward (perMicroBatchForward each time) and reduce-scatters after it (perMicroBatchBackward less that gather).
 */
function simDp(plan: Plan, dp: DpCosts): SimDp {
  const zero3 = plan.zero >= 3;
  return {
    reduceOnceSeconds: dp.reduceOnce.seconds,
    gatherOnceSeconds: dp.gatherOnce.seconds,
    gatherForwardSeconds: zero3 ? dp.perMicroBatchForward.seconds : 0,
    gatherBackwardSeconds: zero3 ? dp.perMicroBatchForward.seconds : 0,
    reducePerMicroBatchSeconds: dp.perMicroBatchBackward.seconds - (zero3 ? dp.perMicroBatchForward.seconds : 0),
    buckets: dp.buckets,
  };
}

/**
 * Parameter servers on the cluster's inter-node links, as src/planner/cost/parameter-server.ts prices
 * them: a worker's gradient push (g bytes per parameter) and weight pull (2 bytes) split evenly over the
 * K servers, each message paying the link's latency once.
 */
function parameterServers(plan: Plan, shape: ClusterShape, paramsPerWorker: number): SimParameterServers {
  const link = shape.spec.interNode;
  const bytesPerSecond = achievedBytesPerSecond(link);
  const k = plan.parameterServers;
  return {
    workers: plan.dp,
    servers: k,
    pushSeconds: link.latencySeconds + (gradientBytesPerParam(plan) * paramsPerWorker) / k / bytesPerSecond,
    pullSeconds: link.latencySeconds + (PARAM_BYTES * paramsPerWorker) / k / bytesPerSecond,
    updateSeconds: 0,
    asynchronous: plan.asynchronous,
    staleness: plan.staleness,
  };
}

/** The simulator's input for a plan, every duration and size taken from the cost model's per-stage costs. */
export function simInputFromCosts(model: ModelSpec, shape: ClusterShape, plan: Plan, costs: PlanCosts): SimInput {
  const stages: SimStage[] = costs.stages.map((s, i) => {
    const full = plan.recomputeLayersPerStage[i] ?? 0;
    return {
      forwardSeconds: s.forwardSeconds,
      backwardInputSeconds: s.backwardInputSeconds,
      backwardWeightSeconds: s.backwardWeightSeconds,
      recomputeSeconds: s.recomputeSeconds,
      tp: { forward: s.tp.forward.seconds, backward: s.tp.backward.seconds },
      cp: { forward: s.cp.forward.seconds, backward: s.cp.backward.seconds },
      ep: { forward: s.ep.forward.seconds, backward: s.ep.backward.seconds },
      dp: simDp(plan, s.dp),
      ...(s.tiedSync.seconds > 0 ? { tiedSyncSeconds: s.tiedSync.seconds } : {}),
      ...(s.ends.length > 0 ? { ends: s.ends } : {}),
      ...(s.firstForwardSeconds.some((x) => x > 0) ? { firstForwardSeconds: s.firstForwardSeconds } : {}),
      optimizerSeconds: s.optimizerSeconds,
      // The same terms as stageActivationBytes (src/planner/cost/memory.ts), per micro-batch.
      memory: {
        perMicroBatchBytes: stagePerMicroBatchBytes(model, plan, i, costs.activations),
        backwardTransientBytes: full > 0 ? costs.activations.none : 0,
        lossBytes: holdsHead(plan, i) ? lossBytes(model, plan) : 0,
        ...(splitsBackward(plan.schedule) ? { weightGradInputBytes: stageWeightGradInputBytes(model, plan, i) } : {}),
        ...(s.optimizerStepBytes > 0 ? { optimizerStepBytes: s.optimizerStepBytes } : {}),
      },
    };
  });
  const stageNames = plan.layersPerStage.map((n, i) => `stage ${i} (${counted(n, "layer")})`);
  return {
    schedule: plan.schedule,
    microBatches: costs.microBatches,
    virtualStages: plan.virtualStages,
    stages,
    ppTransferSeconds: costs.ppTransfer.seconds,
    ...(plan.ppBlockingSends === true ? { blockingSends: true } : {}),
    ...(plan.dpCommExposed === true ? { dpExposed: true } : {}),
    ...(plan.dpCommBlocking === true ? { dpBlocking: true } : {}),
    stageNames,
    ...(plan.schedule === "zb-v" ? { vPassRatios: planVPassRatios(model, plan) } : {}),
    ...(plan.parameterServers > 0 ? { parameterServers: parameterServers(plan, shape, costs.stages[0]!.params) } : {}),
  };
}
