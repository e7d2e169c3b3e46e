import { randomBytes } from "node:crypto";
import { renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Estimate } from "../planner/cost/types.js";
import { scheduleShort } from "./rows.js";

/** A file name that says which plan it holds, unique per plan of a model on a cluster. */
export function planFileName(e: Estimate): string {
  const p = e.plan;
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "_");
  const sched = p.pp === 1 ? "" : `-${scheduleShort(p).replace("/", "v")}`;
  return safe(`meshplan-${e.model}-${e.cluster.gpus}x${e.cluster.gpu}-tp${p.tp}-pp${p.pp}-dp${p.dp}-cp${p.cp}-mb${p.microBatch}${sched}-z${p.zero}-${p.recompute}${p.tp > 1 && !p.sequenceParallel ? "-nosp" : ""}.json`);
}

/**
 * Writes the plan's Estimate (the JSON contract of `meshplan simulate --json`) to `dir`: first to a
 * temporary file beside it, then renamed over the name, so a crash never leaves half a file.
 * Returns the path written.
 */
export function savePlan(dir: string, e: Estimate): string {
  const target = resolve(join(dir, planFileName(e)));
  const temp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    writeFileSync(temp, JSON.stringify(e, null, 2) + "\n");
    renameSync(temp, target);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // nothing was written
    }
    throw err;
  }
  return target;
}
