import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { loadCluster, loadModel } from "../src/cli/catalog.js";
import { searchPlans } from "../src/planner/search/search.js";
import { formatSeconds, median, type BenchRow } from "./util.js";

const BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "meshplan.js");

/** Median process wall time of `meshplan ARGS` over `runs` runs, start-up included. */
function processSeconds(args: string[], runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
    times.push((performance.now() - t0) / 1e3);
    if (r.status !== 0) throw new Error(`meshplan ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  }
  return median(times);
}

/** The planner's targets (issue 3): whole searches in process wall time, plans per second, integer-program solve times. */
export function bench(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const [args, target] of [
    [["plan", "--model", "llama3-405b", "--gpus", "16384"], 1],
    [["plan", "--model", "llama3-8b", "--gpus", "8"], 0.3],
  ] as const) {
    const s = processSeconds([...args], 7);
    rows.push({ name: `meshplan ${args.join(" ")} (process)`, target: formatSeconds(target), median: formatSeconds(s), ratio: (target / s).toFixed(2) });
  }
  const spec = loadCluster("dgx-h100");
  for (const [name, gpus] of [["llama3-405b", 16384], ["llama3-70b", 64]] as const) {
    const model = loadModel(name);
    const shape = { spec, gpus, gpusPerNode: spec.gpusPerNode };
    searchPlans(model, shape, {}, { top: 5 }); // warm up
    const totals: number[] = [];
    const solves: number[] = [];
    let settledByCuts = 0;
    let searched = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = searchPlans(model, shape, {}, { top: 5 });
      totals.push((performance.now() - t0) / 1e3);
      solves.push(...r.partitionSeconds);
      settledByCuts += r.partitionSolvers.filter((x) => x === "cuts").length;
      searched = r.searched;
    }
    const t = median(totals);
    rows.push({ name: `search ${name} on ${gpus} GPUs: ${searched} plans (in process)`, target: "-", median: formatSeconds(t), ratio: `${Math.round(searched / t).toLocaleString("en-US")} plans/s` });
    rows.push({ name: `  integer program per shortlisted mesh (${solves.length} programs, ${settledByCuts} settled by the cuts alone)`, target: "-", median: formatSeconds(median(solves)), ratio: `max ${formatSeconds(Math.max(...solves))}` });
  }
  return rows;
}
