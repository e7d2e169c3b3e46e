import { OpKind, STREAMS, Stream, type Timeline } from "../simulator/types.js";
import { seconds } from "./format.js";

/** What a column of a rank's row shows: what its GPU did most in that slice of time. */
const Cell = { idle: 0, forward: 1, backward: 2, weight: 3, comm: 4, optimizer: 5, link: 6 } as const;
const CELLS = 7;

/** Glyphs differ even without colour (NO_COLOR); colours are ANSI SGR background/foreground pairs. */
const GLYPH = [".", "F", "B", "W", "~", "O", "="];
const SGR = ["2", "44;97", "42;30", "43;30", "45;97", "46;30", "47;30"];
const LEGEND = ["idle", "forward", "backward (+recompute)", "weight gradient", "exposed tp/cp/ep, dp/pp in line", "optimizer", "server link busy"];

export interface RenderOptions {
  /** Terminal width in characters. */
  readonly columns: number;
  readonly color: boolean;
  /** At most this many rank rows; the middle ones are elided beyond it. */
  readonly maxRows?: number;
  /** Draw only this window of the simulated span (default: all of it). */
  readonly fromSeconds?: number;
  readonly toSeconds?: number;
  /** The first line's title (default: which steps are shown). */
  readonly title?: string;
}

function cellOf(kind: number, stream: number): number {
  if (stream === Stream.compute) {
    if (kind === OpKind.forward) return Cell.forward;
    if (kind === OpKind.backward) return Cell.backward;
    if (kind === OpKind.weight) return Cell.weight;
    if (kind === OpKind.optimizer) return Cell.optimizer;
    // Collectives and sends that hold the stage (dpCommBlocking, ppBlockingSends) run on its compute stream.
    if (kind === OpKind.dpGather || kind === OpKind.dpReduce || kind === OpKind.pp) return Cell.comm;
    return -1; // a server's zero-cost update
  }
  return stream === Stream.collective ? Cell.comm : -1;
}

/** Seconds per rank, per column, per cell kind: each op spreads its time over the columns it spans. */
function accumulate(t: Timeline, width: number, from: number, to: number): Float64Array {
  const ops = t.ops;
  const acc = new Float64Array(t.ranks.length * width * CELLS);
  const colSeconds = (to - from) / width;
  const add = (rank: number, cell: number, a: number, e: number) => {
    const first = Math.max(0, Math.floor((a - from) / colSeconds));
    const last = Math.min(width - 1, Math.floor((e - from) / colSeconds));
    for (let c = first; c <= last; c++) {
      const overlap = Math.min(e, from + (c + 1) * colSeconds) - Math.max(a, from + c * colSeconds);
      if (overlap > 0) acc[(rank * width + c) * CELLS + cell]! += overlap;
    }
  };
  for (let op = 0; op < ops.size; op++) {
    const a = ops.startSeconds[op]!;
    const e = ops.endSeconds[op]!;
    if (e <= a || e <= from || a >= to) continue;
    const cell = cellOf(ops.kind[op]!, ops.stream[op]!);
    if (cell >= 0) add(ops.rank[op]!, cell, a, e);
    const peer = ops.peer[op]!;
    if (peer >= 0 && t.ranks[Math.floor(peer / STREAMS)]?.role === "server" && peer % STREAMS === Stream.recv) {
      add(Math.floor(peer / STREAMS), Cell.link, a, e);
    }
  }
  return acc;
}

function paint(cells: readonly number[], color: boolean): string {
  if (!color) return cells.map((c) => GLYPH[c]).join("");
  let out = "";
  for (let i = 0; i < cells.length;) {
    let j = i;
    while (j < cells.length && cells[j] === cells[i]) j++;
    out += `\x1b[${SGR[cells[i]!]}m${GLYPH[cells[i]!]!.repeat(j - i)}\x1b[0m`;
    i = j;
  }
  return out;
}

/** Rank rows to draw: all of them, or the first and last halves of maxRows with a marker between. */
function rowsToDraw(n: number, maxRows: number): (number | "gap")[] {
  if (n <= maxRows) return Array.from({ length: n }, (_, i) => i);
  const head = Math.ceil(maxRows / 2);
  const tail = maxRows - head;
  return [...Array.from({ length: head }, (_, i) => i), "gap", ...Array.from({ length: tail }, (_, i) => n - tail + i)];
}

/**
 * The simulated step as text: one row per rank (pipeline stage, or worker and server), one column per
 * slice of time, each showing what that rank's GPU did most in the slice, then its idle share.
 * Pure: the caller decides the width and whether to colour.
 */
export function renderTimeline(t: Timeline, o: RenderOptions): string {
  const labelWidth = Math.min(24, Math.max(...t.ranks.map((r) => r.name.length)));
  const suffix = " 100.0% idle";
  const width = Math.max(10, o.columns - labelWidth - 3 - suffix.length);
  const from = Math.max(0, o.fromSeconds ?? 0);
  const to = Math.min(t.spanSeconds, o.toSeconds ?? t.spanSeconds);
  const acc = accumulate(t, width, from, to);
  const colSeconds = (to - from) / width;
  const lines: string[] = [];
  const what = t.steps > 1 ? `${t.steps} steps (steady step ${seconds(t.stepSeconds)})` : `one step (${seconds(t.stepSeconds)})`;
  const title = `${o.title ?? `Timeline of ${what}`}, one column = ${seconds(colSeconds)}`;
  const critical = `; critical: ${t.ranks[t.criticalRank]?.name ?? "-"}`;
  lines.push(title.length + critical.length <= o.columns ? title + critical : title.slice(0, o.columns));
  for (const row of rowsToDraw(t.ranks.length, o.maxRows ?? 32)) {
    if (row === "gap") {
      lines.push(`${"".padEnd(labelWidth)}  ... ${t.ranks.length - (o.maxRows ?? 32)} more ...`);
      continue;
    }
    const cells: number[] = [];
    for (let c = 0; c < width; c++) {
      const base = (row * width + c) * CELLS;
      let best: number = Cell.idle;
      let bestSeconds = colSeconds;
      for (let k = 1; k < CELLS; k++) bestSeconds -= acc[base + k]!;
      for (let k = 1; k < CELLS; k++) {
        if (acc[base + k]! >= bestSeconds && acc[base + k]! > 0) {
          best = k;
          bestSeconds = acc[base + k]!;
        }
      }
      cells.push(best);
    }
    const r = t.ranks[row]!;
    const label = r.name.length > labelWidth ? r.name.slice(0, labelWidth) : r.name.padEnd(labelWidth);
    // Idle share of the drawn window, exactly (not from the rounded cells).
    let busySeconds = 0;
    for (let k = row * width * CELLS; k < (row + 1) * width * CELLS; k++) busySeconds += acc[k]!;
    const idle = Math.max(0, 1 - busySeconds / (to - from));
    lines.push(`${label} |${paint(cells, o.color)}|${`${(100 * idle).toFixed(1)}% idle`.padStart(suffix.length)}`);
  }
  const axisStart = seconds(from);
  lines.push(`${"".padEnd(labelWidth)}  ${from === 0 ? "0" : axisStart}${seconds(to).padStart(width + 1 - (from === 0 ? 1 : axisStart.length))}`);
  const shown = t.ranks.some((r) => r.role === "server") ? [0, 1, 2, 4, 6] : t.schedule === "zb-h1" ? [0, 1, 2, 3, 4, 5] : [0, 1, 2, 4, 5];
  // The legend, wrapped to the terminal (measured without colour codes).
  const indent = "".padEnd(labelWidth + 2);
  let line = indent;
  let visible = indent.length;
  for (const c of shown) {
    const item = `${GLYPH[c]} ${LEGEND[c]}`;
    if (visible > indent.length && visible + 2 + item.length > o.columns) {
      lines.push(line);
      line = indent;
      visible = indent.length;
    }
    const sep = visible > indent.length ? "  " : "";
    line += `${sep}${paint([c], o.color)} ${LEGEND[c]}`;
    visible += sep.length + item.length;
  }
  lines.push(line);
  return lines.join("\n");
}

/**
 * Length of the windows worth zooming into at the start and end of the step (the pipeline's fill and
 * drain), or undefined when the whole-step view already resolves every pass: about p + 4 micro-batches
 * of the critical rank, at most a third of the span.
 */
export function zoomSeconds(t: Timeline, columns: number): number | undefined {
  const ops = t.ops;
  const rank = t.criticalRank;
  let passes = 0;
  let microBatches = 0;
  for (let op = 0; op < ops.size; op++) {
    if (ops.rank[op] !== rank || ops.stream[op] !== Stream.compute || ops.kind[op] === OpKind.optimizer) continue;
    passes++;
    microBatches = Math.max(microBatches, ops.microBatch[op]! + 1);
  }
  if (passes <= columns / 4 || microBatches === 0) return undefined;
  const x = t.exposed;
  const perMicroBatch = (x.computeSeconds + x.tpSeconds + x.cpSeconds + x.epSeconds) / (microBatches * t.steps);
  return Math.min(t.spanSeconds / 3, (Math.min(t.ranks.length, 32) + 4) * perMicroBatch);
}
