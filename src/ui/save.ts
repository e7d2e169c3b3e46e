import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import type { Estimate } from "../planner/cost/types.js";
import { scheduleShort } from "./rows.js";
import { outputTarget, writeOutput } from "../cli/output-file.js";

/**
 * A file name that says which plan it holds (model, GPUs, the main knobs; ep where the experts are split) and ends with 8 hex digits of a
 * hash of the whole model name, cluster and plan (sequence, batch, layers per stage, every framework knob):
 * two plans that differ in anything the name leaves out get two files, the same plan saved again the same.
 */
export function planFileName(e: Estimate): string {
  const p = e.plan;
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "_");
  const sched = p.pp === 1 ? "" : `-${scheduleShort(p).replace("/", "v")}`;
  const id = createHash("sha256").update(JSON.stringify({ model: e.model, cluster: e.cluster, plan: p })).digest("hex").slice(0, 8);
  return safe(`meshplan-${e.model}-${e.cluster.gpus}x${e.cluster.gpu}-tp${p.tp}-pp${p.pp}-dp${p.dp}-cp${p.cp}${p.ep > 1 ? `-ep${p.ep}` : ""}-mb${p.microBatch}${sched}-z${p.zero}-${p.recompute}${p.tp > 1 && !p.sequenceParallel ? "-nosp" : ""}-${id}.json`);
}

/**
 * Writes the plan's Estimate (the JSON contract of `meshplan simulate --json`) to `dir` as --trace and
 * --profile are written (cli/output-file.ts): through a temporary file beside it, renamed over the name,
 * so a crash never leaves half a file. Returns the path written.
 */
export function savePlan(dir: string, e: Estimate): string {
  const target = outputTarget("s (save)", resolve(join(dir, planFileName(e))));
  writeOutput(target, [JSON.stringify(e, null, 2) + "\n"]);
  return target.path;
}
