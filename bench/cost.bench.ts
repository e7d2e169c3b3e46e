import { loadCluster, loadModel } from "../src/cli/catalog.js";
import { estimate } from "../src/planner/cost/estimate.js";
import { resolvePlan } from "../src/spec/plan.js";
import type { ClusterShape } from "../src/spec/types.js";
import { formatSeconds, timePerCall, type BenchRow } from "./util.js";

/** The analytic model's speed: one Estimate under 20 us (median), so a search covers 100k+ plans per second (issue 2). */
export function bench(): BenchRow[] {
  const spec = loadCluster("dgx-h100");
  const shape: ClusterShape = { spec, gpus: 64, gpusPerNode: 8 };
  const model = loadModel("llama3-70b");
  const plans = [
    resolvePlan(model, shape, { tp: 8, pp: 4, zero: 1, recompute: "selective" }),
    resolvePlan(model, shape, { tp: 4, pp: 4, cp: 2, zero: 2, virtualStages: 2 }),
    resolvePlan(model, shape, { tp: 8, pp: 8, zero: 3, recompute: "full", schedule: "zb-h1" }),
  ];
  let k = 0;
  const perEstimate = timePerCall(() => {
    estimate(model, shape, plans[k++ % plans.length]!);
  }, 5000, 31);
  return [
    { name: "one analytic Estimate (llama3-70b, 64 GPUs)", target: "20 us", median: formatSeconds(perEstimate), ratio: (20e-6 / perEstimate).toFixed(1) },
  ];
}
