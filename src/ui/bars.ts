import { GIB, pct, seconds } from "../cli/format.js";
import type { Estimate } from "../planner/cost/types.js";

/** One part of a stacked bar: a glyph (readable without colour), a colour, a label and its amount. */
export interface Segment {
  readonly glyph: string;
  readonly color: string;
  readonly label: string;
  readonly value: number;
}

/** A bar cell: the segment it belongs to, or -1 for free space up to the scale. */
export type Cells = readonly number[];

/**
 * Splits `width` cells among the segments in proportion to their values on a scale of `scale` (the
 * capacity, or the total when larger), by cumulative rounding: the cells always add up to the rounded
 * total, and a non-zero segment is never wider than its share by more than one cell.
 */
export function barCells(segments: readonly Segment[], scale: number, width: number): Cells {
  const total = segments.reduce((a, s) => a + Math.max(0, s.value), 0);
  const full = Math.max(scale, total);
  const cells: number[] = [];
  let sum = 0;
  segments.forEach((s, i) => {
    const before = Math.round((sum / full) * width);
    sum += Math.max(0, s.value);
    const after = Math.round((sum / full) * width);
    for (let c = before; c < after; c++) cells.push(i);
  });
  while (cells.length < width) cells.push(-1);
  return cells;
}

/** Consecutive runs of equal cells, for drawing each in one colour. */
export function runs(cells: Cells): { readonly segment: number; readonly length: number }[] {
  const out: { segment: number; length: number }[] = [];
  for (const c of cells) {
    const last = out[out.length - 1];
    if (last !== undefined && last.segment === c) last.length++;
    else out.push({ segment: c, length: 1 });
  }
  return out;
}

export function memorySegments(e: Estimate): Segment[] {
  const b = e.memory.breakdown;
  return [
    { glyph: "P", color: "blue", label: "params", value: b.parametersBytes },
    { glyph: "G", color: "cyan", label: "grads", value: b.gradientsBytes },
    { glyph: "O", color: "magenta", label: "optim", value: b.optimizerBytes },
    { glyph: "A", color: "yellow", label: "activ", value: b.activationsBytes },
    { glyph: "X", color: "gray", label: "other", value: b.otherBytes },
  ];
}

/** The exposed parts of a step (they add up to it); only those that are not zero, compute always. */
export function timeSegments(e: Estimate): Segment[] {
  const b = e.time.breakdown;
  const all: Segment[] = [
    { glyph: "C", color: "green", label: "compute", value: b.computeSeconds },
    { glyph: "T", color: "magenta", label: "tp", value: b.tpCommSeconds },
    { glyph: "K", color: "magenta", label: "cp", value: b.cpCommSeconds },
    { glyph: "E", color: "magenta", label: "ep", value: b.epCommSeconds },
    { glyph: "P", color: "cyan", label: "pp", value: b.ppCommSeconds },
    { glyph: "D", color: "blue", label: "dp", value: b.dpCommSeconds },
    { glyph: "U", color: "yellow", label: "optim", value: b.optimizerSeconds },
    { glyph: "B", color: "red", label: "bubble", value: b.bubbleSeconds },
  ];
  return all.filter((s, i) => i === 0 || s.value > 0);
}

/**
 * A legend within `width` characters: every part with its label ("P params 16.9"), else with single spaces
 * between the parts, else the glyphs alone ("P 16.9": the help screen names them), so that no amount is cut.
 */
export function fitLegend(parts: readonly { readonly glyph: string; readonly label: string; readonly amount: string }[], unit: string, width: number): string {
  const tail = unit === "" ? "" : ` ${unit}`;
  const forms = [
    parts.map((p) => `${p.glyph} ${p.label} ${p.amount}`).join("  ") + (unit === "" ? "" : `  ${unit}`),
    parts.map((p) => `${p.glyph} ${p.label} ${p.amount}`).join(" ") + tail,
    parts.map((p) => `${p.glyph} ${p.amount}`).join("  ") + tail,
  ];
  return forms.find((f) => f.length <= width) ?? forms[forms.length - 1]!;
}

export function memoryLegend(e: Estimate, width = Number.POSITIVE_INFINITY): string {
  return fitLegend(memorySegments(e).map((s) => ({ glyph: s.glyph, label: s.label, amount: (s.value / GIB).toFixed(1) })), "GiB", width);
}

export function memoryTotal(e: Estimate): string {
  const m = e.memory;
  const at = m.atOptimizerStep === true ? " (step peak)" : ""; // during the optimizer step
  const head = `${(m.peakBytesPerGpu / GIB).toFixed(1)}/${(m.capacityBytes / GIB).toFixed(1)} GiB${at}`;
  return m.fits ? head : `${head} OVER by ${((m.peakBytesPerGpu - m.capacityBytes) / GIB).toFixed(1)} GiB`;
}

export function timeLegend(e: Estimate, width = Number.POSITIVE_INFINITY): string {
  const step = e.time.stepSeconds;
  return fitLegend(timeSegments(e).map((s) => ({ glyph: s.glyph, label: s.label, amount: pct(s.value / step) })), "", width);
}

export function timeTotal(e: Estimate): string {
  return `${seconds(e.time.stepSeconds)}  MFU ${pct(e.throughput.mfu)}`;
}
