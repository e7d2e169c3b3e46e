import { bytesHuman, GIB, pct, seconds } from "../cli/format.js";
import { resolveLinks } from "../planner/cost/communication.js";
import type { Estimate } from "../planner/cost/types.js";
import type { ClusterShape, Plan } from "../spec/types.js";
import { grouped } from "../math/digits.js";

/** Text of the plan list, the links line and the compare table. Pure: widths in, strings out. */
export function scheduleShort(p: Plan): string {
  if (p.pp === 1) return "-";
  return p.schedule === "interleaved" ? `int/${p.virtualStages}` : p.schedule;
}

/** `text` within `width` characters, cut ones ending in ".." so that a cut list does not read as a whole one. */
function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 2)}..`;
}

export function recomputeShort(p: Plan): string {
  const full = p.recomputeLayersPerStage.reduce((a, b) => a + b, 0);
  const total = p.layersPerStage.reduce((a, b) => a + b, 0);
  const base = p.recompute === "selective" ? "sel" : p.recompute;
  if (full === 0) return base;
  return full === total ? "full" : `${base}+${full}f`;
}

function exposedComm(e: Estimate): number {
  const b = e.time.breakdown;
  return b.tpCommSeconds + b.cpCommSeconds + b.epCommSeconds + b.ppCommSeconds + b.dpCommSeconds;
}

interface Column {
  readonly head: string;
  readonly cell: (e: Estimate, rank: number) => string;
  /** Only in terminals at least this wide. */
  readonly minColumns?: number;
  /** Only for models with experts (MoE). */
  readonly experts?: true;
}

const COLUMNS: readonly Column[] = [
  { head: "#", cell: (_, i) => String(i + 1) },
  { head: "dp", cell: (e) => String(e.plan.dp) },
  { head: "tp", cell: (e) => String(e.plan.tp) },
  { head: "pp", cell: (e) => String(e.plan.pp) },
  { head: "cp", cell: (e) => String(e.plan.cp) },
  { head: "ep", cell: (e) => String(e.plan.ep), experts: true },
  { head: "mb", cell: (e) => String(e.plan.microBatch) },
  { head: "sched", cell: (e) => scheduleShort(e.plan) },
  { head: "Z", cell: (e) => String(e.plan.zero) },
  { head: "rc", cell: (e) => recomputeShort(e.plan) },
  { head: "layers", cell: (e) => (new Set(e.plan.layersPerStage).size === 1 ? "even" : clip(e.plan.layersPerStage.join("/"), 11)), minColumns: 120 },
  { head: "SP", cell: (e) => (e.plan.tp > 1 ? (e.plan.sequenceParallel ? "on" : "off") : "-"), minColumns: 100 },
  // the capacity as precise as the use: 79.7 of 79.6 GiB must not read 79.7/80
  { head: "GiB/GPU", cell: (e) => `${(e.memory.peakBytesPerGpu / GIB).toFixed(1)}/${(e.memory.capacityBytes / GIB).toFixed(1)}${e.memory.fits ? "" : "!"}` },
  { head: "step", cell: (e) => seconds(e.time.stepSeconds) },
  { head: "MFU", cell: (e) => pct(e.throughput.mfu) },
  { head: "tokens/s", cell: (e) => grouped(e.throughput.tokensPerSecond), minColumns: 100 },
  { head: "bubble", cell: (e) => pct(e.pipeline.bubbleFraction), minColumns: 110 },
  { head: "comm", cell: (e) => pct(exposedComm(e) / e.time.stepSeconds), minColumns: 110 },
];

/** The list's columns for a terminal width and a list: each as wide as its widest cell, two spaces apart. */
export interface ListTable {
  readonly columns: readonly Column[];
  readonly widths: readonly number[];
  /** Spaces between columns: two, or one where two would leave no room for the page indicator. */
  readonly gap: number;
}

/** The marker gutter before a row, and room kept after the header for the page indicator (" 96-100/100"). */
const GUTTER = 2;
const INDICATOR = 11;

/**
 * Columns sized to the list they show (the widest cell of every plan listed, not only the visible ones,
 * so that scrolling never moves them): a list fits 80 columns with room for the page indicator. `experts`:
 * the model has experts, and the list gets an ep column.
 */
export function listTable(plans: readonly Estimate[], width: number, experts: boolean): ListTable {
  const columns = COLUMNS.filter((c) => (c.minColumns === undefined || width >= c.minColumns) && (c.experts !== true || experts));
  const widths = columns.map((c) => Math.max(c.head.length, ...plans.map((e, i) => c.cell(e, i).length)));
  const cells = widths.reduce((a, w) => a + w, 0);
  const gap = GUTTER + cells + 2 * (columns.length - 1) + INDICATOR <= width ? 2 : 1;
  return { columns, widths, gap };
}

function fmt(cells: readonly string[], t: ListTable): string {
  return cells.map((c, i) => c.padStart(t.widths[i]!)).join(" ".repeat(t.gap));
}

/** The list's header, after the two-character marker gutter. */
export function listHeader(t: ListTable): string {
  return fmt(t.columns.map((c) => c.head), t);
}

export function listRow(t: ListTable, e: Estimate, rank: number): string {
  return fmt(t.columns.map((c) => c.cell(e, rank)), t);
}

const GROUPS = ["tp", "cp", "ep", "pp", "dp"] as const;

/**
 * Bytes each GPU sends per step, one line per link they cross (NVLink or PCIe inside a node, the
 * network between nodes), with the achieved bandwidth per GPU: the link's first group's after its name,
 * and a group's own after its bytes where it differs (pipeline sends on the network reach less than the
 * collectives of another group there). Given `width`, a line that would not fit drops the groups' own
 * rates, then the link's, before anything is cut: the bytes are what the line is for.
 */
export function linkLines(e: Estimate, shape: ClusterShape, width = Number.POSITIVE_INFINITY): string[] {
  const links = resolveLinks(e.plan, shape);
  const sent = e.communication.bytesPerGpuPerStep;
  const byLink = new Map<string, { bandwidth: number; parts: { group: string; bytes: string; own: string }[] }>();
  for (const g of GROUPS) {
    if (sent[g] <= 0) continue;
    const link = links[g === "dp" && e.plan.ep > 1 ? "edp" : g];
    const entry = byLink.get(link.name) ?? { bandwidth: link.bytesPerSecond, parts: [] };
    const own = gbPerSecond(link.bytesPerSecond) === gbPerSecond(entry.bandwidth) ? "" : ` (${gbPerSecond(link.bytesPerSecond)})`;
    entry.parts.push({ group: g, bytes: bytesHuman(sent[g]), own });
    byLink.set(link.name, entry);
  }
  if (byLink.size === 0) return ["nothing sent: one GPU, no data parallel"];
  return [...byLink].map(([name, v]) => {
    const line = (owns: boolean, rate: boolean) =>
      `${name}${rate ? ` (${gbPerSecond(v.bandwidth)})` : ""}: ${v.parts.map((x) => `${x.group} ${x.bytes}${owns ? x.own : ""}`).join(", ")}`;
    return [line(true, true), line(false, true), line(false, false)].find((l) => l.length <= width) ?? line(false, false);
  });
}

function gbPerSecond(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e9).toFixed(0)} GB/s`;
}

/** The compare table: one row per quantity, the two plans side by side and B against A. */
export function compareRows(a: Estimate, b: Estimate): [string, string, string, string][] {
  const rel = (x: number, y: number) => (x === 0 ? (y === 0 ? "" : "new") : `${y >= x ? "+" : ""}${pct(y / x - 1)}`);
  const num = (label: string, f: (e: Estimate) => number, show: (v: number) => string): [string, string, string, string] =>
    [label, show(f(a)), show(f(b)), rel(f(a), f(b))];
  const text = (label: string, f: (e: Estimate) => string): [string, string, string, string] => [label, f(a), f(b), f(a) === f(b) ? "" : "differs"];
  const gib = (v: number) => `${(v / GIB).toFixed(1)} GiB`;
  const bd = (e: Estimate) => e.time.breakdown;
  const mb = (e: Estimate) => e.memory.breakdown;
  return [
    text("model", (e) => `${e.model} ${e.cluster.gpus}x${e.cluster.gpu}`),
    // ep where either plan splits its experts (a model without experts always has ep 1)
    text("mesh", (e) => `dp ${e.plan.dp} tp ${e.plan.tp} pp ${e.plan.pp} cp ${e.plan.cp}${a.plan.ep > 1 || b.plan.ep > 1 ? ` ep ${e.plan.ep}` : ""}`),
    text("knobs", (e) => `mb ${e.plan.microBatch} ${scheduleShort(e.plan)} Z${e.plan.zero} ${recomputeShort(e.plan)}${e.plan.tp > 1 && !e.plan.sequenceParallel ? " noSP" : ""}`),
    num("step", (e) => e.time.stepSeconds, seconds),
    num("tokens/s", (e) => e.throughput.tokensPerSecond, grouped),
    num("MFU", (e) => e.throughput.mfu, pct),
    num("  compute", (e) => bd(e).computeSeconds, seconds),
    num("  bubble", (e) => bd(e).bubbleSeconds, seconds),
    num("  tp+cp+ep comm", (e) => bd(e).tpCommSeconds + bd(e).cpCommSeconds + bd(e).epCommSeconds, seconds),
    num("  pp+dp comm", (e) => bd(e).ppCommSeconds + bd(e).dpCommSeconds, seconds),
    num("  optimizer", (e) => bd(e).optimizerSeconds, seconds),
    num("memory/GPU", (e) => e.memory.peakBytesPerGpu, gib),
    num("  params", (e) => mb(e).parametersBytes, gib),
    num("  grads", (e) => mb(e).gradientsBytes, gib),
    num("  optimizer", (e) => mb(e).optimizerBytes, gib),
    num("  activations", (e) => mb(e).activationsBytes, gib),
    num("  other", (e) => mb(e).otherBytes, gib),
    num("sent/GPU/step", (e) => Object.values(e.communication.bytesPerGpuPerStep).reduce((x, y) => x + y, 0), bytesHuman),
  ];
}
