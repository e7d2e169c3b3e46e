import { InputError } from "../../spec/errors.js";
import { resolvePlan, type PlanInput } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec } from "../../spec/types.js";
import { estimate } from "../cost/estimate.js";
import type { Estimate } from "../cost/types.js";
import { candidates } from "./space.js";

export interface SearchResult {
  readonly searched: number;
  readonly feasible: number;
  /** Best first: fitting plans by tokens/s (ties by memory headroom); when none fits, the closest misses. */
  readonly plans: readonly Estimate[];
}

function better(a: Estimate, b: Estimate): number {
  const speed = b.throughput.tokensPerSecond - a.throughput.tokensPerSecond;
  if (Math.abs(speed) > 1e-9 * Math.max(a.throughput.tokensPerSecond, 1)) return speed;
  return a.memory.peakBytesPerGpu - b.memory.peakBytesPerGpu;
}

/**
 * Exhaustive search over the plan space with the analytic cost model, keeping the best `top` plans that
 * fit (and, in case none fits, the `top` smallest overflows).
 */
export function searchPlans(model: ModelSpec, shape: ClusterShape, pinned: PlanInput, top: number): SearchResult {
  let searched = 0;
  let feasible = 0;
  const best: Estimate[] = [];
  const closest: Estimate[] = [];
  let firstError: InputError | undefined;
  for (const input of candidates(model, shape, pinned)) {
    let e: Estimate;
    try {
      e = estimate(model, shape, resolvePlan(model, shape, input));
    } catch (err) {
      if (err instanceof InputError) {
        firstError ??= err;
        continue;
      }
      throw err;
    }
    searched++;
    if (e.memory.fits) {
      feasible++;
      insertTop(best, e, top, better);
    } else {
      insertTop(closest, e, top, (a, b) => a.memory.peakBytesPerGpu - b.memory.peakBytesPerGpu);
    }
  }
  if (searched === 0 && firstError !== undefined) throw firstError;
  if (searched === 0) {
    throw new InputError({ code: "unsupported", field: "plan flags", value: pinned, valid: "flags that leave at least one valid plan", reason: "no plan matches the pinned dimensions" });
  }
  return { searched, feasible, plans: feasible > 0 ? best : closest };
}

function insertTop(list: Estimate[], e: Estimate, top: number, cmp: (a: Estimate, b: Estimate) => number): void {
  if (list.length >= top && cmp(e, list[list.length - 1]!) >= 0) return;
  let i = list.length;
  while (i > 0 && cmp(e, list[i - 1]!) < 0) i--;
  list.splice(i, 0, e);
  if (list.length > top) list.pop();
}
