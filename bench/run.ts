/**
 * `npm run bench`: speed targets, as medians over repeated samples (shared machines are noisy; no single
 * timing is trusted). Prints each target, the measured median and the ratio target/measured (>= 1 meets it).
 */
import { performance } from "node:perf_hooks";
import { loadCluster, loadModel } from "../src/cli/catalog.js";
import { estimate } from "../src/planner/cost/estimate.js";
import { searchPlans } from "../src/planner/search/search.js";
import { resolvePlan } from "../src/spec/plan.js";
import type { ClusterShape } from "../src/spec/types.js";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median seconds per call of `fn`, from `samples` samples of `batch` calls each. */
function timePerCall(fn: () => void, batch: number, samples: number): number {
  for (let i = 0; i < batch; i++) fn(); // warm up the JIT
  const per: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    per.push((performance.now() - t0) / 1e3 / batch);
  }
  return median(per);
}

const spec = loadCluster("dgx-h100");
const shape: ClusterShape = { spec, gpus: 64, gpusPerNode: 8 };
const model = loadModel("llama3-70b");
const plans = [
  resolvePlan(model, shape, { tp: 8, pp: 4, zero: 1, recompute: "selective" }),
  resolvePlan(model, shape, { tp: 4, pp: 4, cp: 2, zero: 2, virtualStages: 2 }),
  resolvePlan(model, shape, { tp: 8, pp: 8, zero: 3, recompute: "full", schedule: "zb-h1" }),
];

const rows: [string, string, string, string][] = [];
let k = 0;
const perEstimate = timePerCall(() => {
  estimate(model, shape, plans[k++ % plans.length]!);
}, 5000, 31);
rows.push(["one analytic Estimate (llama3-70b, 64 GPUs)", "20 us", `${(perEstimate * 1e6).toFixed(2)} us`, (20e-6 / perEstimate).toFixed(1)]);

const searchSeconds = timePerCall(() => {
  searchPlans(model, shape, {}, 5);
}, 1, 5);
const searched = searchPlans(model, shape, {}, 5).searched;
rows.push([`plan search, ${searched} plans (llama3-70b, 64 GPUs)`, "(none yet)", `${(searchSeconds * 1e3).toFixed(0)} ms`, `${Math.round(searched / searchSeconds).toLocaleString("en-US")} plans/s`]);

const width = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length), ["benchmark", "target", "median", "target/median"][c]!.length));
const fmt = (r: string[]) => r.map((x, c) => x.padEnd(width[c]!)).join("  ");
console.log(fmt(["benchmark", "target", "median", "target/median"]));
for (const r of rows) console.log(fmt(r));
