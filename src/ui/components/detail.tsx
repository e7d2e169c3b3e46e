import { useMemo } from "react";
import { renderTimeline, zoomSeconds } from "../../cli/timeline.js";
import type { Estimate } from "../../planner/cost/types.js";
import type { Timeline } from "../../simulator/types.js";
import type { ClusterShape } from "../../spec/types.js";
import { memoryLegend, memorySegments, memoryTotal, timeLegend, timeSegments, timeTotal } from "../bars.js";
import { timelineRows } from "../layout.js";
import { linkLines } from "../rows.js";
import type { TimelineWindow } from "../state.js";
import { Bar } from "./bar.js";
import { Line, Styled } from "./styled.js";

export interface DetailProps {
  readonly estimate: Estimate | undefined;
  readonly timeline: Timeline | undefined;
  /** Why the timeline is missing (simulating; does not fit). */
  readonly noTimeline: string;
  readonly shape: ClusterShape;
  readonly columns: number;
  readonly lines: number;
  readonly window: TimelineWindow;
  readonly color: boolean;
  /** Sentences for spare lines (why the best plan wins). */
  readonly why: readonly string[];
}

const LABEL = "memory";
/** Room after the bars for their totals: at least this, more for a longer total ("... OVER by 23.4 GiB"). */
const TOTAL_WIDTH = 28;

/** Width of each bar: what is left after the label and the longer of the two totals, which are never cut. */
export function barWidth(columns: number, totals: readonly string[]): number {
  const total = Math.max(TOTAL_WIDTH, ...totals.map((t) => t.length + 1));
  return Math.max(10, columns - LABEL.length - 3 - total);
}

/** The timeline's lines for a window: title, one row per stage (elided in the middle), the axis. */
export function timelineLines(t: Timeline, window: TimelineWindow, columns: number, lines: number, color: boolean): string[] {
  const maxRows = timelineRows(lines, t.ranks.length);
  const zoom = window === "whole" ? undefined : zoomSeconds(t, columns);
  const span = t.spanSeconds;
  const range = zoom === undefined ? {} : window === "start" ? { fromSeconds: 0, toSeconds: zoom } : { fromSeconds: span - zoom, toSeconds: span };
  const title = zoom === undefined ? "Timeline, whole step" : window === "start" ? "Timeline, start of the step" : "Timeline, end of the step";
  const text = renderTimeline(t, { columns, color, maxRows, title, ...range });
  const drawn = t.ranks.length <= maxRows ? t.ranks.length : maxRows + 1;
  return text.split("\n").slice(0, drawn + 2);
}

/** Greedy word wrap to `width` columns. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      out.push(line);
      line = "";
    }
    line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") out.push(line);
  return out;
}

/**
 * The sentences of why the first plan wins, wrapped to `columns` ("- " before each), as many whole
 * sentences as `spare` lines hold: a sentence that does not fit whole is left out, not cut.
 */
export function whyLines(sentences: readonly string[], columns: number, spare: number): string[] {
  if (spare < 2) return [];
  const out: string[] = [];
  for (const s of sentences) {
    const lines = wrap(s, columns - 2).map((l, k) => `${k === 0 ? "- " : "  "}${l}`);
    if (out.length + lines.length > spare) break;
    out.push(...lines);
  }
  return out;
}

const LINKS_LABEL = "sent per GPU per step  ";

/** The selected plan: memory and time bars, bytes per link, the simulated timeline, then spare lines. */
export function Detail(p: DetailProps) {
  const e = p.estimate;
  const timeline = useMemo(
    () => (p.timeline === undefined ? [] : timelineLines(p.timeline, p.window, p.columns, p.lines, p.color)),
    [p.timeline, p.window, p.columns, p.lines, p.color],
  );
  const links = useMemo(() => (e === undefined ? [] : linkLines(e, p.shape, p.columns - LINKS_LABEL.length)), [e, p.shape, p.columns]);
  if (e === undefined) {
    return <Line> </Line>;
  }
  const body = timeline.length > 0 ? timeline : [`Timeline: ${p.noTimeline}`];
  const why = whyLines(p.why, p.columns, p.lines - body.length - 1);
  const legendWidth = p.columns - LABEL.length - 2;
  const totals = [memoryTotal(e), timeTotal(e)] as const;
  const width = barWidth(p.columns, totals);
  return (
    <>
      <Bar label={LABEL} segments={memorySegments(e)} scale={e.memory.capacityBytes} width={width} total={totals[0]} legend={memoryLegend(e, legendWidth)} />
      <Bar label={"time".padEnd(LABEL.length)} segments={timeSegments(e)} scale={e.time.stepSeconds} width={width} total={totals[1]} legend={timeLegend(e, legendWidth)} />
      {[0, 1].map((i) => (
        <Line key={`l${i}`}>
          <Styled bold>{i === 0 ? LINKS_LABEL : " ".repeat(LINKS_LABEL.length)}</Styled>
          {links[i] ?? ""}
        </Line>
      ))}
      {body.map((l, i) => <Line key={i}>{l}</Line>)}
      {why.length > 0 ? <Line><Styled bold>Why the first plan wins</Styled></Line> : null}
      {why.map((l, i) => <Line key={`w${i}`}>{l}</Line>)}
    </>
  );
}
