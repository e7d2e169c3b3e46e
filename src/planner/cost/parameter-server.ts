import type { ClusterShape, Plan } from "../../spec/types.js";
import { gradientBytesPerParam, PARAM_BYTES } from "./memory.js";
import { achievedBytesPerSecond } from "./placement.js";

/**
 * Data parallelism through parameter servers (Li et al. 2014, OSDI; TensorFlow's ParameterServerStrategy):
 * each of W workers pushes its gradients to K servers, each holding 1/K of the weights, and pulls the new
 * weights back. Per step a worker moves P*(g + 2) bytes through its own network link, while a server moves
 * W*P*(g + 2)/K through its one link: with many workers the servers are the bottleneck. Servers are
 * processes on the cluster's hosts, each with one GPU's share of the network (cluster interNode link).
 */
export interface ParameterServerCost {
  /** Bytes each worker pushes per step (gradients). */
  readonly pushBytesPerWorker: number;
  /** Seconds of communication per step: the slower of a worker's link and a server's link. */
  readonly seconds: number;
  /** Seconds the servers' links are busy per step (their queue, for W workers). */
  readonly serverSeconds: number;
}

export function parameterServerCost(plan: Plan, shape: ClusterShape, paramsPerWorker: number): ParameterServerCost {
  const link = shape.spec.interNode;
  const bw = achievedBytesPerSecond(link);
  const push = gradientBytesPerParam(plan) * paramsPerWorker;
  const pull = PARAM_BYTES * paramsPerWorker;
  const workerSeconds = 2 * link.latencySeconds + (push + pull) / bw;
  const serverSeconds = 2 * link.latencySeconds + (plan.dp * (push + pull)) / plan.parameterServers / bw;
  return { pushBytesPerWorker: push, seconds: Math.max(workerSeconds, serverSeconds), serverSeconds };
}

/**
 * A synchronous step waits for the exchange (compute + communication). An asynchronous worker with a
 * staleness bound of at least one step computes on weights that may lag while its previous exchange is
 * under way, so its step is the slower of the two; the servers' links bound throughput either way.
 */
export function parameterServerStepSeconds(plan: Plan, computeSeconds: number, commSeconds: number): number {
  return plan.asynchronous && plan.staleness >= 1 ? Math.max(computeSeconds, commSeconds) : computeSeconds + commSeconds;
}
