import type { Plan } from "../../spec/types.js";
import { blockOf } from "../comm/fabric.js";
import type { Endpoint } from "../comm/endpoint.js";
import { workerCount } from "./grid.js";
import type { ModelState } from "./state.js";

/**
 * Data parallelism through parameter servers (Li et al. 2014; TensorFlow's ParameterServerStrategy),
 * worker side. The worker's whole model is one flat vector (its units in order); server k of K owns
 * block k (floor(k n / K) .. floor((k+1) n / K)). Each step a worker pushes its gradient blocks and waits
 * for the servers' new weights. Synchronous servers update once with the sum of every worker's gradient
 * (the all-reduce's numerics); asynchronous ones update with each push as it comes and answer a worker
 * only while it is at most `staleness` steps ahead of the slowest (stale synchronous parallel, Ho et al. 2013).
 */
export function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function split(flat: Float32Array, sizes: readonly number[]): Float32Array[] {
  let at = 0;
  return sizes.map((n) => flat.subarray(at, (at += n)));
}

export function serverBlock(total: number, plan: Plan, server: number): { first: number; end: number } {
  return blockOf(total, plan.parameterServers, server);
}

/** Push this step's gradients, pull the new weights. */
export function exchangeWithServers(ep: Endpoint, plan: Plan, state: ModelState, step: number): void {
  const workers = workerCount(plan);
  const grads = state.localGradients();
  const flat = concat(grads);
  for (let k = 0; k < plan.parameterServers; k++) {
    const b = serverBlock(flat.length, plan, k);
    ep.channel(ep.rank, workers + k).send(step, flat.subarray(b.first, b.end), "dp.ps-push");
  }
  const weights = new Float32Array(flat.length);
  for (let k = 0; k < plan.parameterServers; k++) {
    const b = serverBlock(flat.length, plan, k);
    weights.set(ep.channel(workers + k, ep.rank).recv(step, "dp.ps-pull"), b.first);
  }
  state.replaceWeights(split(weights, grads.map((g) => g.length)));
}
