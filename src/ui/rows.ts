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
  readonly width: number;
  readonly cell: (e: Estimate, rank: number) => string;
  /** Only in terminals at least this wide. */
  readonly minColumns?: number;
}

const COLUMNS: readonly Column[] = [
  { head: "#", width: 3, cell: (_, i) => String(i + 1) },
  { head: "dp", width: 4, cell: (e) => String(e.plan.dp) },
  { head: "tp", width: 3, cell: (e) => String(e.plan.tp) },
  { head: "pp", width: 3, cell: (e) => String(e.plan.pp) },
  { head: "cp", width: 3, cell: (e) => String(e.plan.cp) },
  { head: "mb", width: 3, cell: (e) => String(e.plan.microBatch) },
  { head: "sched", width: 6, cell: (e) => scheduleShort(e.plan) },
  { head: "Z", width: 2, cell: (e) => String(e.plan.zero) },
  { head: "rc", width: 9, cell: (e) => recomputeShort(e.plan) },
  { head: "layers", width: 11, cell: (e) => (new Set(e.plan.layersPerStage).size === 1 ? "even" : clip(e.plan.layersPerStage.join("/"), 11)), minColumns: 120 },
  { head: "SP", width: 3, cell: (e) => (e.plan.tp > 1 ? (e.plan.sequenceParallel ? "on" : "off") : "-"), minColumns: 100 },
  { head: "GiB/GPU", width: 9, cell: (e) => `${(e.memory.peakBytesPerGpu / GIB).toFixed(1)}/${(e.memory.capacityBytes / GIB).toFixed(0)}${e.memory.fits ? "" : "!"}` },
  { head: "step", width: 9, cell: (e) => seconds(e.time.stepSeconds) },
  { head: "MFU", width: 6, cell: (e) => pct(e.throughput.mfu) },
  { head: "tokens/s", width: 10, cell: (e) => grouped(e.throughput.tokensPerSecond), minColumns: 100 },
  { head: "bubble", width: 7, cell: (e) => pct(e.pipeline.bubbleFraction), minColumns: 110 },
  { head: "comm", width: 7, cell: (e) => pct(exposedComm(e) / e.time.stepSeconds), minColumns: 110 },
];

function columnsFor(width: number): Column[] {
  return COLUMNS.filter((c) => c.minColumns === undefined || width >= c.minColumns);
}

function fmt(cells: readonly string[], cols: readonly Column[]): string {
  return cells.map((c, i) => c.padStart(cols[i]!.width)).join(" ");
}

/** The list's header, after the two-character marker gutter. */
export function listHeader(width: number): string {
  const cols = columnsFor(width);
  return fmt(cols.map((c) => c.head), cols);
}

export function listRow(e: Estimate, rank: number, width: number): string {
  const cols = columnsFor(width);
  return fmt(cols.map((c) => c.cell(e, rank)), cols);
}

const GROUPS = ["tp", "cp", "ep", "pp", "dp"] as const;

/**
 * Bytes each GPU sends per step, one line per link they cross (NVLink or PCIe inside a node, the
 * network between nodes), with the link's achieved bandwidth per GPU.
 */
export function linkLines(e: Estimate, shape: ClusterShape): string[] {
  const links = resolveLinks(e.plan, shape);
  const sent = e.communication.bytesPerGpuPerStep;
  const byLink = new Map<string, { bandwidth: number; parts: string[] }>();
  for (const g of GROUPS) {
    if (sent[g] <= 0) continue;
    const link = links[g === "dp" && e.plan.ep > 1 ? "edp" : g];
    const entry = byLink.get(link.name) ?? { bandwidth: link.bytesPerSecond, parts: [] };
    entry.parts.push(`${g} ${bytesHuman(sent[g])}`);
    byLink.set(link.name, entry);
  }
  if (byLink.size === 0) return ["nothing sent: one GPU, no data parallel"];
  return [...byLink].map(([name, v]) => `${name} (${(v.bandwidth / 1e9).toFixed(0)} GB/s): ${v.parts.join(", ")}`);
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
    text("mesh", (e) => `dp ${e.plan.dp} tp ${e.plan.tp} pp ${e.plan.pp} cp ${e.plan.cp}`),
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
