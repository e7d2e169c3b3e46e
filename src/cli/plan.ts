import { performance } from "node:perf_hooks";
import { searchPlans } from "../planner/search/search.js";
import { InputError } from "../spec/errors.js";
import type { ParsedArgs } from "./args.js";
import { loadContext, planInputFrom } from "./context.js";
import { gib, pct, planSummary, seconds } from "./format.js";
import type { Io } from "./io.js";
import type { Estimate } from "../planner/cost/types.js";

/** `meshplan plan`: search the plan space and rank what fits. Exit 1 when nothing fits. */
export function planCommand(args: ParsedArgs, io: Io): number {
  const top = typeof args.flags.top === "number" ? args.flags.top : 5;
  if (top < 1) throw new InputError({ code: "out-of-range", field: "--top", value: top, valid: "an integer >= 1" });
  const { model, shape } = loadContext(args.flags);
  const start = performance.now();
  const result = searchPlans(model, shape, planInputFrom(args.flags), top);
  const elapsedSeconds = (performance.now() - start) / 1e3;
  if (args.flags.json === true) {
    io.out(JSON.stringify({
      model: model.name,
      cluster: { name: shape.spec.name, gpu: shape.spec.gpu.name, gpus: shape.gpus, gpusPerNode: shape.gpusPerNode },
      searched: result.searched,
      feasible: result.feasible,
      elapsedSeconds,
      plans: result.feasible > 0 ? result.plans : [],
      ...(result.feasible > 0 ? {} : { closest: result.plans }),
    }, null, 2));
    return result.feasible > 0 ? 0 : 1;
  }
  const lines = [
    `${model.name} on ${shape.gpus} x ${shape.spec.gpu.name} (${shape.spec.name}): ${result.searched.toLocaleString("en-US")} plans searched, ` +
      `${result.feasible.toLocaleString("en-US")} fit, ${seconds(elapsedSeconds)}`,
    "",
  ];
  if (result.feasible === 0) {
    const c = result.plans[0]!;
    lines.push(`No plan fits in ${gib(c.memory.capacityBytes)} per GPU. Closest: ${planSummary(c)}`);
    lines.push(`  needs ${gib(c.memory.peakBytesPerGpu)}, over by ${gib(c.memory.peakBytesPerGpu - c.memory.capacityBytes)}.`);
    lines.push("  What could make it fit: more GPUs, a shorter sequence (--seq), a smaller micro-batch, or a GPU with more memory (--gpu).");
    io.out(lines.join("\n"));
    return 1;
  }
  lines.push(table(result.plans));
  lines.push("", "(ranking by the analytic cost model; the integer program for stage layouts and the explanations come with the planner issue)");
  io.out(lines.join("\n"));
  return 0;
}

function table(plans: readonly Estimate[]): string {
  const head = ["#", "dp", "tp", "pp", "cp", "ep", "mb", "schedule", "ZeRO", "recompute", "SP", "memory/GPU", "step", "tokens/s", "MFU", "bubble", "exposed comm"];
  const rows = plans.map((e, i) => {
    const p = e.plan;
    const b = e.time.breakdown;
    const comm = b.tpCommSeconds + b.cpCommSeconds + b.ppCommSeconds + b.dpCommSeconds + b.epCommSeconds;
    return [
      String(i + 1), String(p.dp), String(p.tp), String(p.pp), String(p.cp), String(p.ep), String(p.microBatch),
      p.schedule === "interleaved" ? `interleaved/${p.virtualStages}` : p.schedule,
      String(p.zero), p.recompute, p.sequenceParallel ? "on" : "off",
      `${(e.memory.peakBytesPerGpu / 2 ** 30).toFixed(1)}/${(e.memory.capacityBytes / 2 ** 30).toFixed(0)} GiB`,
      seconds(e.time.stepSeconds),
      Math.round(e.throughput.tokensPerSecond).toLocaleString("en-US"),
      pct(e.throughput.mfu), pct(e.pipeline.bubbleFraction), pct(comm / e.time.stepSeconds),
    ];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd();
  return [fmt(head), ...rows.map(fmt)].join("\n");
}
