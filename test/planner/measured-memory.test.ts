import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { builtinNames, clusterLoader, loadModel } from "../../src/cli/catalog.js";
import { stageMemory } from "../../src/planner/cost/estimate.js";
import { totalBytes } from "../../src/planner/cost/memory.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { readMeasurements } from "../../src/validate/files.js";
import { prepareCases, prepareRecords } from "../../src/validate/predict.js";

/** One configuration of models/hardware/measured/h100-sxm-memory.json (scripts/gpu/memory_step.py). */
interface Row {
  readonly record: string; readonly tp: number; readonly pp: number; readonly dp: number; readonly mb: number;
  readonly allocatorConf: string; readonly microBatchesPerStep?: number;
  readonly steps?: { maxAllocatedBytes: number }[];
}
const FILE = join(import.meta.dirname, "..", "..", "models", "hardware", "measured", "h100-sxm-memory.json");
const rows = (JSON.parse(readFileSync(FILE, "utf8")) as { configs: Row[] }).configs;

const cluster = clusterLoader();
const records = readMeasurements().filter((r) => rows.some((x) => x.record === r.id));
const cases = prepareRecords(records, builtinNames("model").map(loadModel), cluster).prepared;

/**
 * The cost model's first-stage peak for the emulated run, its tensors alone (no runtime reserve and no
 * allocator cache: the bytes allocated): the record's plan with its global batch set to the micro-batches
 * the emulation played, so 1F1B's in-flight count min(pp, m) is the same on both sides.
 */
function predictedAllocatedBytes(row: Row): number {
  const p = cases.find((c) => c.case.id === row.record)!;
  const globalBatch = row.microBatchesPerStep! * row.mb * row.dp;
  const [again] = prepareCases([{ ...p.case, plan: { ...p.case.plan, globalBatch, runtimeReserveBytes: 0, allocatorCacheShare: 0 } }], cluster).prepared;
  const plan = again!.plan;
  expect([plan.tp, plan.pp, plan.dp, plan.microBatch]).toEqual([row.tp, row.pp, row.dp, row.mb]);
  return totalBytes(stageMemory(p.case.model, plan, planCosts(p.case.model, again!.shape, plan), 0));
}

describe("a training step's memory measured on an H100 (models/hardware/measured/h100-sxm-memory.json)", () => {
  const ran = rows.filter((r) => r.steps !== undefined && r.steps.length > 0);

  it("covers the published BLOOM configurations it names, with both allocator settings", () => {
    expect(cases.map((c) => c.case.id).sort()).toEqual([...new Set(rows.map((r) => r.record))].sort());
    expect(new Set(rows.map((r) => r.allocatorConf))).toEqual(new Set(["default", "expandable_segments:True"]));
    expect(ran.length).toBeGreaterThanOrEqual(17);
  });

  it("the cost model's model states, activations and step copy are within 4% of the bytes PyTorch allocated", () => {
    for (const r of ran) {
      const measured = r.steps!.at(-1)!.maxAllocatedBytes;
      const error = predictedAllocatedBytes(r) / measured - 1;
      expect(Math.abs(error), `${r.record} ${r.allocatorConf}: predicted/measured - 1 = ${error.toFixed(3)}`).toBeLessThan(0.04);
    }
  });
});
