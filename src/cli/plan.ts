import { performance } from "node:perf_hooks";
import type { Estimate } from "../planner/cost/types.js";
import { describePlan, explainRanking, layersLabel, recomputeLabel, searchSummary, serversLabel, zeroLabel } from "../planner/explain/explain.js";
import { fitAdvice } from "../planner/explain/fit-advice.js";
import { MAX_REFINED_PASSES, searchPlans } from "../planner/search/search.js";
import { simulateEstimate, type StepCache } from "../simulator/simulate.js";
import { InputError } from "../spec/errors.js";
import type { ParsedArgs } from "./args.js";
import { builtinNames, loadGpu } from "./catalog.js";
import { loadContext, planInputFrom } from "./context.js";
import { calibratedLine, defaultSeqLines, frameworkLine, pct, seconds } from "./format.js";
import type { Io } from "./io.js";
import { grouped } from "../math/digits.js";

/** `meshplan plan`: search the plan space, rank what fits and say why. Exit 1 when nothing fits. */
export function planCommand(args: ParsedArgs, io: Io): number {
  const top = typeof args.flags.top === "number" ? args.flags.top : 5;
  if (top < 1) throw new InputError({ code: "out-of-range", field: "--top", value: top, valid: "an integer >= 1" });
  const { model, shape, calibratedAt } = loadContext(args.flags, true);
  const pinned = planInputFrom(args.flags);
  const start = performance.now();
  // The shortlist's final ranking comes from the event simulator (the search itself never imports it).
  const steps: StepCache = new Map();
  const result = searchPlans(model, shape, pinned, { top, refine: (m, s, p) => simulateEstimate(m, s, p, steps) });
  const elapsedSeconds = (performance.now() - start) / 1e3;
  const cluster = { name: shape.spec.name, gpu: shape.spec.gpu.name, gpus: shape.gpus, gpusPerNode: shape.gpusPerNode };
  const fits = result.plans.length > 0;
  const advice = fits ? [] : fitAdvice(model, shape, pinned, result.closest[0]!, builtinNames("gpu").map((name) => loadGpu(name)));

  if (args.flags.json === true) {
    io.out(JSON.stringify({
      model: model.name, cluster, searched: result.searched, feasible: result.feasible, elapsedSeconds, plans: result.plans,
      ...(fits ? {} : { closest: result.closest, advice }),
    }, null, 2));
    return fits ? 0 : 1;
  }
  const lines = [
    `${model.name} on ${shape.gpus} x ${shape.spec.gpu.name} (${shape.spec.name}), global batch ${result.plans[0]?.plan.globalBatch ?? result.closest[0]?.plan.globalBatch} x ${result.plans[0]?.plan.seqLen ?? result.closest[0]?.plan.seqLen} tokens: ` +
      `${searchSummary({ ...result, bounded: result.skipped.computeBound })}, ${seconds(elapsedSeconds)}`,
    calibratedLine(calibratedAt),
    ...defaultSeqLines(model, args.flags.seq !== undefined),
    "",
  ];
  if (!fits) {
    lines.push(`No plan fits. Closest: ${describePlan(result.closest[0]!.plan)}`, "", table(result.closest), "", ...advice);
    io.out(lines.join("\n"));
    return 1;
  }
  lines.push(table(result.plans));
  if (result.unrefined > 0) {
    lines.push(`(${result.unrefined} of the plans ranked keep the analytic model's step: more than ${grouped(MAX_REFINED_PASSES)} passes a step, too many to simulate event by event)`);
  }
  if (result.equivalent > 0) lines.push(`(${result.equivalent} more layouts with the same speed and memory by another split of dp, cp and micro-batch are not listed)`);
  const engine = [pinned.ppBlockingSends === true ? "--pp-blocking-sends" : "", pinned.dpCommExposed === true ? "--dp-comm-exposed" : ""].filter((f) => f !== "");
  if (engine.length > 0 && result.plans.some((e) => e.plan.pp === 1)) {
    lines.push(`(${engine.join(" and ")} ${engine.length > 1 ? "describe" : "describes"} DeepSpeed's pipeline engine: the plans without a pipeline (pp 1) run without ${engine.length > 1 ? "them" : "it"})`);
  }
  const framework = frameworkLine(result.plans[0]!.plan);
  lines.push("", ...(framework === undefined ? [] : [framework]), ...explainRanking(model, shape, result.plans));
  io.out(lines.join("\n"));
  return 0;
}

function table(plans: readonly Estimate[]): string {
  // The layers column only where a listed plan has a pipeline (its layout is then part of the plan).
  const layers = plans.some((e) => e.plan.pp > 1);
  // The servers column only where a listed plan has parameter servers (plan --ps).
  const servers = plans.some((e) => e.plan.parameterServers > 0);
  const head = ["#", "dp", "tp", "pp", "cp", "ep", "mb", "schedule", ...(layers ? ["layers"] : []), "ZeRO", ...(servers ? ["servers"] : []), "recompute", "memory/GPU", "step", "tokens/s", "MFU", "bubble", "exposed comm"];
  const rows = plans.map((e, i) => {
    const p = e.plan;
    const b = e.time.breakdown;
    const comm = b.tpCommSeconds + b.cpCommSeconds + b.ppCommSeconds + b.dpCommSeconds + b.epCommSeconds;
    return [
      String(i + 1), String(p.dp), String(p.tp), String(p.pp), String(p.cp), String(p.ep), String(p.microBatch),
      p.schedule === "interleaved" ? `interleaved/${p.virtualStages}` : p.pp === 1 ? "-" : p.schedule,
      ...(layers ? [layersLabel(p)] : []),
      zeroLabel(p, true), ...(servers ? [p.parameterServers === 0 ? "-" : serversLabel(p.parameterServers, p.asynchronous, p.staleness)] : []), recomputeLabel(p),
      `${(e.memory.peakBytesPerGpu / 2 ** 30).toFixed(1)}/${(e.memory.capacityBytes / 2 ** 30).toFixed(1)} GiB`,
      seconds(e.time.stepSeconds),
      grouped(e.throughput.tokensPerSecond),
      pct(e.throughput.mfu), pct(e.pipeline.bubbleFraction), pct(comm / e.time.stepSeconds),
    ];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd();
  return [fmt(head), ...rows.map(fmt)].join("\n");
}
