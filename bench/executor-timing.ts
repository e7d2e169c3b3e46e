/**
 * `npm run timing-check [-- CALIBRATIONS ROUNDS [KEEP_DIR]] [--moe]`: the executor's timing check as a user would make it,
 * each command line in a process of its own: `meshplan calibrate` into a fresh profile, then ROUNDS rounds of
 * the CI's four executions (tiny-gpt dp2, tp2, pp2 1F1B, cp2; `meshplan execute --json`, 12 timed steps;
 * with --moe also tiny-moe dp2 x ep2 and cp2),
 * CALIBRATIONS times (defaults 3 and 2). Prints each execution's step error (measured - predicted over
 * predicted) and bubble error (measured - predicted), then how many came within 25% and 0.05
 * (src/executor/measure/accuracy.ts). Not a test and not a benchmark: it takes about 2.5 minutes per
 * calibration on a 2-core machine and its figures move with the machine's load; src/executor/README.md
 * ("Time") summarises what it gave, src/executor/TIME-RECORD.md records each run. With KEEP_DIR, each profile and each execution's JSON report are written
 * there (profile-C.json, C-ROUND-PLAN.json) and kept, to see afterwards why a prediction missed.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { summarizeTiming, timingRow, type TimingRow } from "../src/executor/measure/accuracy.js";
import type { ExecuteReport } from "../src/executor/measure/report.js";
import type { MedianInterval } from "../src/executor/measure/stats.js";
import { intervalText } from "../src/executor/measure/table.js";

interface CheckedPlan { readonly name: string; readonly model: string; readonly flags: Record<string, string | number> }

const PLANS: readonly CheckedPlan[] = [
  { name: "dp2", model: "tiny-gpt", flags: { dp: 2 } }, { name: "tp2", model: "tiny-gpt", flags: { tp: 2 } },
  { name: "pp2", model: "tiny-gpt", flags: { pp: 2, schedule: "1f1b" } }, { name: "cp2", model: "tiny-gpt", flags: { cp: 2 } },
];

/** With --moe, besides: tiny-moe (4 experts, top 2) with its experts split over two data-parallel ranks, and under cp2. */
const MOE_PLANS: readonly CheckedPlan[] = [
  { name: "moe dp2 ep2", model: "tiny-moe", flags: { dp: 2, ep: 2 } }, { name: "moe cp2", model: "tiny-moe", flags: { cp: 2 } },
];

const BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "meshplan.js");

function count(arg: string | undefined, fallback: number, name: string): number {
  if (arg === undefined) return fallback;
  const n = Number(arg);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`timing-check: ${name} = ${JSON.stringify(arg)} is not valid; want a whole number >= 1`);
    process.exit(2);
  }
  return n;
}

/**
 * One command line in a process of its own, as a user runs it. (Until 2026-11-23 the commands ran in this
 * process: a second calibration there, after the first and its executions, measured a profile whose pp2
 * bubble came out about 0.2 where fresh processes give 0.13-0.16, and the executions' 0.12-0.17 matched
 * the fresh ones; four of four second calibrations missed 0.05, eight of eight first ones were within it.)
 */
function run(name: string, flags: Record<string, string | number | boolean>): string {
  const args = [name, ...Object.entries(flags).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, String(v)]))];
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`meshplan ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const args = process.argv.slice(2);
const plans = args.includes("--moe") ? [...PLANS, ...MOE_PLANS] : PLANS;
const positional = args.filter((a) => a !== "--moe");
const calibrations = count(positional[0], 3, "CALIBRATIONS");
const rounds = count(positional[1], 2, "ROUNDS");
const keep = positional[2];
if (keep !== undefined) {
  try {
    mkdirSync(keep, { recursive: true });
  } catch (e) {
    console.error(`timing-check: KEEP_DIR = ${JSON.stringify(keep)} cannot be made a folder (${(e as Error).message}); want a folder path`);
    process.exit(2);
  }
}
const width = Math.max(...plans.map((p) => p.name.length));
const dir = keep ?? mkdtempSync(join(tmpdir(), "meshplan-timing-"));
const rows: TimingRow[] = [];
const pct = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%`;
/** The interval of the run's median (report.ts stepSecondsInterval), where it has one. */
const range = (i: MedianInterval | undefined, show: (x: number) => string) => {
  if (i === undefined) return "";
  const t = intervalText(i, show);
  return `; median in ${t.range} at ${t.percent}`;
};
try {
  for (let c = 0; c < calibrations; c++) {
    const profile = join(dir, `profile-${c + 1}.json`);
    console.error(`calibration ${c + 1} of ${calibrations}`);
    run("calibrate", { profile });
    for (let round = 1; round <= rounds; round++) {
      for (const p of plans) {
        const json = run("execute", { model: p.model, ...p.flags, profile, json: true });
        if (keep !== undefined) writeFileSync(join(keep, `${c + 1}-${round}-${p.name.replaceAll(" ", "-")}.json`), json);
        const report = JSON.parse(json) as ExecuteReport;
        const row = timingRow(`${c + 1}`, round, p.name, report);
        rows.push(row);
        // The bubble compared (the run's bottleneck, the stage with the least) and every stage's, to see the choice.
        const stages = report.measured.ranks.map((r) => `s${r.stage} ${r.bubbleFraction.toFixed(3)}`).join(", ");
        const m = report.measured;
        const bubble = row.bubbleError === undefined ? "" : `  bubble ${report.predicted.pipeline.bubbleFraction.toFixed(3)} predicted, ${m.bubbleFraction.toFixed(3)} measured (${row.bubbleError >= 0 ? "+" : ""}${row.bubbleError.toFixed(3)}${range(m.bubbleFractionInterval, (x) => x.toFixed(3))}; ${stages})`;
        console.log(`calibration ${row.calibration} round ${round} ${p.name.padEnd(width)} predicted ${(1e3 * row.predictedStepSeconds).toFixed(1)} ms, measured ${(1e3 * row.measuredStepSeconds).toFixed(1)} ms (${pct(row.stepError)}${range(m.stepSecondsInterval, (x) => (1e3 * x).toFixed(1))})${bubble}`);
      }
    }
  }
} finally {
  if (keep === undefined) rmSync(dir, { recursive: true, force: true });
}
const s = summarizeTiming(rows);
console.log(`steps within 25%: ${s.steps.within} of ${s.steps.count} (median error ${(100 * s.steps.medianAbsError).toFixed(1)}%, largest ${(100 * s.steps.maxAbsError).toFixed(1)}%)`);
console.log(`bubbles within 0.05: ${s.bubbles.within} of ${s.bubbles.count} (largest ${s.bubbles.maxAbsError.toFixed(3)})`);
// Against the runs' own spread: a prediction outside the interval of a run's median missed by more than its steps vary.
console.log(`predictions inside the interval of the run's median: steps ${s.steps.inInterval} of ${s.steps.intervals}, bubbles ${s.bubbles.inInterval} of ${s.bubbles.intervals}`);
