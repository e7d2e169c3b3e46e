import { COMM_KINDS } from "../comm/fabric.js";
import { worstMemoryRank, type ExecuteReport } from "./report.js";
import { counted } from "../../math/digits.js";
import type { MedianInterval } from "./stats.js";

/** The execute command's human view: predicted against measured, side by side, with the difference. */
function seconds(s: number): string {
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(1)} ms`;
  return `${(s * 1e6).toFixed(0)} us`;
}

function bytes(b: number): string {
  if (b >= 1e6) return `${(b / 1e6).toFixed(2)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${b.toFixed(0)} B`;
}

function diff(predicted: number, measured: number): string {
  if (predicted === 0 && measured === 0) return "";
  if (predicted === 0) return "(not predicted)";
  const d = (measured - predicted) / predicted;
  return `${d >= 0 ? "+" : ""}${(100 * d).toFixed(1)}%`;
}

function row(name: string, predicted: string, measured: string, difference: string): string {
  return `  ${name.padEnd(26)}${predicted.padStart(12)}  ${measured.padStart(12)}  ${difference}`.trimEnd();
}

/** A measured median's interval (report.ts stepSecondsInterval) as text: its probability, and its ends in `show`'s units. */
export function intervalText(i: MedianInterval, show: (x: number) => string): { readonly percent: string; readonly range: string } {
  return { percent: `${(100 * i.confidence).toFixed(0)}%`, range: `${show(i.low)}-${show(i.high)}` };
}

/** The row under a measured median: the interval that holds it over the timed steps, in the measured column, where there is one. */
function interval(i: MedianInterval | undefined, show: (x: number) => string): string[] {
  if (i === undefined) return [];
  const t = intervalText(i, show);
  return [row(`  median, ${t.percent} interval`, "", t.range, "")];
}

/** Step losses as a path; a long run's middle elided, with the step numbers kept (all are in --json). */
function lossPath(losses: readonly number[]): string {
  const shown = (from: number, to: number) => losses.slice(from, to).map((x) => x.toFixed(4)).join(" -> ");
  if (losses.length <= 8) return shown(0, losses.length);
  return `${shown(0, 3)} -> ... (step ${losses.length - 2}) ${shown(losses.length - 3, losses.length)}`;
}

function stepsRun(r: ExecuteReport): string {
  const all = r.measured.losses.length;
  const w = r.measured.warmupSteps;
  return w > 0 ? `${counted(all - w, "timed step")} after ${counted(w, "warm-up step")}` : counted(all, "step");
}

export function formatReport(r: ExecuteReport, modelName: string): string {
  const p = r.plan;
  const lines: string[] = [];
  // ZB-V: the pass lengths its order was found for (the profile's priced passes unless given).
  const order = p.vPassRatios === undefined ? "" : `, order for B ${p.vPassRatios.backward}, W ${p.vPassRatios.weight}`;
  const sched = p.pp > 1 ? `, ${p.schedule}${p.virtualStages > 1 ? ` (v=${p.virtualStages}${order})` : ""}` : "";
  const ps = p.parameterServers > 0 ? `, ${counted(p.parameterServers, "parameter server")}${p.asynchronous ? ` async (staleness ${p.staleness})` : " sync"}` : "";
  lines.push(`${modelName}: dp ${p.dp} x tp ${p.tp} x pp ${p.pp} x cp ${p.cp}, SP ${p.sequenceParallel ? "on" : "off"}, ZeRO ${p.zero}${sched}${ps}`);
  lines.push(`  ${r.engine.devices} ${r.engine.name} ranks on the ${r.engine.backend} backend, micro-batch ${p.microBatch}, global batch ${p.globalBatch} x ${p.seqLen} tokens, ${stepsRun(r)}`);
  lines.push("");
  lines.push(row("", "predicted", "measured", "difference"));
  const e = r.predicted;
  lines.push(row("step time", seconds(e.time.stepSeconds), seconds(r.measured.stepSeconds), diff(e.time.stepSeconds, r.measured.stepSeconds)));
  lines.push(...interval(r.measured.stepSecondsInterval, seconds));
  if (p.pp > 1) {
    const d = r.measured.bubbleFraction - e.pipeline.bubbleFraction;
    lines.push(row("bubble fraction", e.pipeline.bubbleFraction.toFixed(3), r.measured.bubbleFraction.toFixed(3), `${d >= 0 ? "+" : ""}${d.toFixed(3)}`));
    lines.push(...interval(r.measured.bubbleFractionInterval, (x) => x.toFixed(3)));
  }
  const worst = worstMemoryRank(r);
  const m = worst.memory;
  lines.push(`  memory of rank ${worst.rank} (float32; the cost model's 16-bit weights counted at 4 bytes):`);
  const mb = m.costModel;
  lines.push(row("  parameters", bytes(2 * mb.parametersBytes), bytes(m.parametersBytes), diff(2 * mb.parametersBytes, m.parametersBytes)));
  lines.push(row("  gradients", bytes(mb.gradientsBytes), bytes(m.gradientsBytes), diff(mb.gradientsBytes, m.gradientsBytes)));
  lines.push(row("  optimizer", bytes(mb.optimizerBytes), bytes(m.optimizerBytes), diff(mb.optimizerBytes, m.optimizerBytes)));
  lines.push(row("  activations (tfjs)", bytes(m.predictedActivationsBytes), bytes(m.activationsBytes), diff(m.predictedActivationsBytes, m.activationsBytes)));
  lines.push(row("  peak (tfjs accounting)", bytes(m.predictedPeakBytes), bytes(m.peakBytes), diff(m.predictedPeakBytes, m.peakBytes)));
  lines.push("  sent per step, busiest rank (cost model's elements at 4 bytes):");
  for (const k of COMM_KINDS) {
    const b = r.bytes[k];
    if (b.predictedBytes === 0 && b.measuredBytes === 0) continue;
    lines.push(row(`  ${k}`, bytes(b.predictedBytes), bytes(b.measuredBytes), diff(b.predictedBytes, b.measuredBytes)));
  }
  lines.push("");
  lines.push(`loss ${lossPath(r.measured.losses)}`);
  if (r.numerics !== null) {
    lines.push(`reference (one rank, same seed) ${lossPath(r.numerics.referenceLosses)}`);
    lines.push(`  largest loss difference ${r.numerics.maxRelativeError.toExponential(1)} relative, largest weight difference ${r.numerics.maxWeightError.toExponential(1)}`);
  }
  if (r.measured.staleness !== undefined) lines.push(`staleness of applied gradients: mean ${r.measured.staleness.mean.toFixed(2)}, max ${r.measured.staleness.max} updates`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join("\n");
}
