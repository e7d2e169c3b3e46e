/**
 * `npm run bench`: every speed target, as medians over repeated samples (shared machines are noisy; no
 * single timing is trusted). Runs each bench/*.bench.ts module (compiled to dist/bench) and prints one
 * table: the target, the measured median and the ratio target/median (>= 1 meets it).
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchRow } from "./util.js";

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv[2];
const rows: BenchRow[] = [];
for (const file of readdirSync(here).filter((f) => f.endsWith(".bench.js")).sort()) {
  if (only !== undefined && !file.startsWith(only)) continue;
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { bench: () => BenchRow[] | Promise<BenchRow[]> };
  rows.push(...(await mod.bench()));
}
const head: BenchRow = { name: "benchmark", target: "target", median: "median", ratio: "target/median" };
const cols = ["name", "target", "median", "ratio"] as const;
const width = cols.map((c) => Math.max(...[head, ...rows].map((r) => r[c].length)));
for (const r of [head, ...rows]) console.log(cols.map((c, i) => r[c].padEnd(width[i]!)).join("  ").trimEnd());
