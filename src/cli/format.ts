import { recomputeLabel, serversWords, zeroLabel } from "../planner/explain/explain.js";
import type { Estimate } from "../planner/cost/types.js";
import type { ModelSpec, Plan } from "../spec/types.js";
import { FLAG_OF_PLAN_FIELD } from "./args.js";
import { FRAMEWORK_SWITCHES, FRAMEWORK_VALUES } from "../spec/plan.js";
import { counted, grouped } from "../math/digits.js";

export const GIB = 2 ** 30;

export function gib(bytes: number): string {
  return `${(bytes / GIB).toFixed(1)} GiB`;
}

export function seconds(s: number): string {
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(1)} ms`;
  return `${(s * 1e6).toFixed(1)} us`;
}

export function bytesHuman(b: number): string {
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${b.toFixed(0)} B`;
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** A text bar of `width` cells, `fraction` of them filled (clamped to the bar). */
export function bar(fraction: number, width: number): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return "#".repeat(filled) + ".".repeat(width - filled);
}

export function planSummary(e: Estimate): string {
  const p = e.plan;
  const degrees = `dp ${p.dp} x tp ${p.tp} x pp ${p.pp} x cp ${p.cp}${p.ep > 1 ? ` (ep ${p.ep})` : ""}`;
  const sched = p.schedule === "interleaved" ? `interleaved (v=${p.virtualStages})`
    : p.vPassRatios !== undefined ? `${p.schedule} (order for B ${p.vPassRatios.backward}, W ${p.vPassRatios.weight})` : p.schedule;
  const rc = recomputeLabel(p);
  const perStage = rc.includes("+") ? ` (full per stage ${p.recomputeLayersPerStage.join("/")})` : "";
  return `${degrees}, SP ${p.sequenceParallel ? "on" : "off"}, micro-batch ${p.microBatch}, ${sched}, ZeRO ${zeroLabel(p)}, recompute ${rc}${perStage}${serversWords(p)}`;
}

/**
 * Where the plan's global batch is a default the user did not give (`defaultBatch`) rounded up to what the
 * split takes (resolvePlan), the line that says so; undefined where it was given or is the default itself.
 */
export function batchRoundedNote(p: Plan, defaultBatch: number, given: number | undefined): string | undefined {
  if (given !== undefined || p.globalBatch === defaultBatch) return undefined;
  return `global batch ${p.globalBatch} sequences: the default ${defaultBatch} ${roundedTo(p)} (--global-batch sets it)`;
}

/** The note that an imported model's default sequence is shorter than its positions, unless --seq was given. */
export function defaultSeqLines(model: ModelSpec, seqGiven: boolean): string[] {
  return model.defaultSeqNote !== undefined && !seqGiven ? [`${model.name}: ${model.defaultSeqNote}`] : [];
}

/** What resolvePlan rounds a default batch up to a multiple of (spec/plan.ts batchMultiple), in words. */
export function roundedTo(p: Plan): string {
  return `rounded up to a multiple of dp x micro-batch${p.schedule === "interleaved" ? " x pp (interleaved)" : ""}`;
}

/** The framework knobs a plan has on, as their flags (doc/cost-model.md): how a stack runs the split. */
export function frameworkFlags(p: Plan): string[] {
  const flags = FRAMEWORK_SWITCHES.filter((k) => p[k] === true).map((k) => `--${FLAG_OF_PLAN_FIELD[k]}`);
  const valued = (["shardGroup", ...FRAMEWORK_VALUES] as const).filter((k) => p[k] !== undefined).map((k) => `--${FLAG_OF_PLAN_FIELD[k]} ${p[k]}`);
  return [...flags, ...valued];
}

/** The best plan's framework knobs as one line of `plan`'s and the explorer's explanation; undefined where it has none. */
export function frameworkLine(p: Plan): string | undefined {
  const knobs = frameworkFlags(p);
  return knobs.length === 0 ? undefined : `Framework, as given (doc/cost-model.md): ${knobs.join(" ")}.`;
}

/**
 * Says whose efficiencies predict: the calibration layer's (the default, fitted at `fittedAt`) or, with
 * --no-calibrated (fittedAt undefined), the priors alone.
 */
export function calibratedLine(fittedAt: string | undefined): string {
  return fittedAt === undefined
    ? "efficiency: the priors alone (--no-calibrated: datasheet and benchmark figures; steps typically 20-35% shorter than runs take)"
    : `efficiency calibrated on published runs (models/hardware/calibration.json, fitted ${fittedAt}; accuracy: meshplan validate)`;
}

/** The human view of one estimate: memory against capacity, time breakdown, throughput. */
export function formatEstimate(e: Estimate): string {
  const p = e.plan;
  const lines: string[] = [];
  lines.push(`${e.model} on ${e.cluster.gpus} x ${e.cluster.gpu} (${e.cluster.name}, ${e.cluster.gpusPerNode} per node)`);
  lines.push(`plan: ${planSummary(e)}`);
  lines.push(`      global batch ${p.globalBatch} x ${p.seqLen} tokens, ${counted(e.pipeline.microBatches, "micro-batch", "micro-batches")} per replica, ${p.precision}` +
    `${p.flashAttention ? ", flash attention" : ""}, layers per stage ${p.layersPerStage.join("/")}`);
  const knobs = frameworkFlags(p);
  if (knobs.length > 0) lines.push(`      framework: ${knobs.join(" ")}`);
  lines.push("");

  const m = e.memory;
  const free = m.capacityBytes - m.peakBytesPerGpu;
  const when = m.atOptimizerStep === true ? ", at the optimizer step" : "";
  lines.push(`Memory per GPU (worst: stage ${m.worstStage}${when})   ${gib(m.peakBytesPerGpu)} of ${gib(m.capacityBytes)}  ` +
    (m.fits ? `fits, ${gib(free)} free` : `DOES NOT FIT: over by ${gib(-free)}`));
  const mem: [string, number][] = [
    ["parameters", m.breakdown.parametersBytes],
    ["gradients", m.breakdown.gradientsBytes],
    ["optimizer", m.breakdown.optimizerBytes],
    ["activations", m.breakdown.activationsBytes],
    ["other", m.breakdown.otherBytes],
  ];
  for (const [name, bytes] of mem) {
    lines.push(`  ${name.padEnd(12)} ${bar(bytes / m.capacityBytes, 30)} ${gib(bytes).padStart(10)}`);
  }
  lines.push("");

  const t = e.time;
  lines.push(`Time per step   ${seconds(t.stepSeconds)}`);
  const time: [string, number][] = [
    ["compute", t.breakdown.computeSeconds],
    ["bubble", t.breakdown.bubbleSeconds],
    ["tp comm", t.breakdown.tpCommSeconds],
    ["cp comm", t.breakdown.cpCommSeconds],
    ["ep comm", t.breakdown.epCommSeconds],
    ["pp comm", t.breakdown.ppCommSeconds],
    ["dp comm", t.breakdown.dpCommSeconds],
    ["optimizer", t.breakdown.optimizerSeconds],
  ];
  for (const [name, s] of time) {
    if (s === 0 && name !== "compute") continue;
    lines.push(`  ${name.padEnd(12)} ${bar(s / t.stepSeconds, 30)} ${seconds(s).padStart(10)} ${pct(s / t.stepSeconds).padStart(7)}`);
  }
  lines.push("");

  const th = e.throughput;
  lines.push(`Throughput      ${grouped(th.tokensPerSecond)} tokens/s, ` +
    `${th.modelTflopsPerGpu.toFixed(0)} model TFLOP/s per GPU, MFU ${pct(th.mfu)}, HFU ${pct(th.hfu)}`);
  if (p.pp > 1) lines.push(`Pipeline        bubble ${pct(e.pipeline.bubbleFraction)} of the pipelined time`);
  const c = e.communication.bytesPerGpuPerStep;
  const comm = (["tp", "cp", "ep", "pp", "dp"] as const).filter((k) => c[k] > 0).map((k) => `${k} ${bytesHuman(c[k])}`);
  lines.push(`Sent per GPU    ${comm.length === 0 ? "nothing" : comm.join(", ")} per step`);
  return lines.join("\n");
}
