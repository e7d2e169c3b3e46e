import type { Plan } from "../../spec/types.js";
import { isPinned, knobApplies, KNOBS, knobValue, shortValue, type Flags, type KnobContext } from "../knobs.js";
import { Line, Styled } from "./styled.js";

export interface KnobBarProps {
  readonly flags: Flags;
  readonly knobs: KnobContext;
  readonly selected: Plan | undefined;
  readonly focus: number;
  readonly title: boolean;
  /** The terminal's width: a plan line that would not fit drops the second space between knobs. */
  readonly columns?: number;
  /** The calibration layer applies (the default; not with --no-calibrated): shown after the context. */
  readonly calibrated?: boolean;
  /** The GPU when --gpu swapped the cluster's: shown after the cluster, which names its own GPU otherwise. */
  readonly gpu?: string | undefined;
  /** Parameter servers where --ps pinned them ("4 sync", "4 async/2"): shown after the GPU. */
  readonly servers?: string | undefined;
}

const MAX_VALUE = 24;
const CALIBRATED = " calibrated";

export interface KnobCell {
  readonly index: number;
  readonly text: string;
  readonly pinned: boolean;
}

function cellText(label: string, value: string, pinned: boolean): string {
  return `${label} ${value}${pinned ? "*" : ""}`;
}

/** The cells of one knob line: "label value", `*` when pinned; knobs that do not apply to the model are left out. */
export function knobCells(kind: "context" | "plan", flags: Flags, knobs: KnobContext, selected: Plan | undefined): KnobCell[] {
  return KNOBS.flatMap((k, index) => {
    if (k.kind !== kind || !knobApplies(k, knobs.model)) return [];
    const pinned = isPinned(flags, k);
    let value = shortValue(knobValue(k, flags, knobs, selected));
    if (value.length > MAX_VALUE) value = `...${value.slice(-(MAX_VALUE - 3))}`;
    return [{ index, text: cellText(k.label, value, pinned), pinned }];
  });
}

/** Shortest a value other than the focused one is cut to ("mi.."), so that the focused knob fits. */
const MIN_VALUE = 4;

/**
 * The cells within `room` columns: as they are, else with one space between cells away from the focus
 * (`compact`), else with the longest other values cut ("mixtr.."), so the focused knob is always shown whole.
 */
export function fitCells(cells: readonly KnobCell[], focus: number, room: number): { readonly cells: readonly KnobCell[]; readonly compact: boolean } {
  if (knobLineWidth(cells) <= room) return { cells, compact: false };
  const out = [...cells];
  const label = (c: KnobCell) => KNOBS[c.index]!.label;
  const valueOf = (c: KnobCell) => c.text.slice(label(c).length + 1, c.pinned ? -1 : undefined);
  while (compactLineWidth(out, focus) > room) {
    let longest = -1;
    for (const [i, c] of out.entries()) {
      if (c.index !== focus && valueOf(c).length > MIN_VALUE && (longest < 0 || valueOf(c).length > valueOf(out[longest]!).length)) longest = i;
    }
    if (longest < 0) break; // nothing left to cut: the line's end is cut
    const c = out[longest]!;
    const v = valueOf(c);
    out[longest] = { ...c, text: cellText(label(c), `${v.slice(0, -3)}..`, c.pinned) };
  }
  return { cells: out, compact: true };
}

/**
 * The separators around the cells: two characters between cells, with `[` and `]` in them around the
 * focused cell, one at each end; where `compact`, one space between cells away from the focus.
 */
export function separators(cells: readonly KnobCell[], focus: number, compact: boolean): string[] {
  return Array.from({ length: cells.length + 1 }, (_, i) => {
    const before = cells[i - 1]?.index === focus;
    const after = cells[i]?.index === focus;
    const width = i === 0 || i === cells.length || (compact && !before && !after) ? 1 : 2;
    if (after) return `${" ".repeat(width - 1)}[`;
    if (before) return `]${" ".repeat(width - 1)}`;
    return " ".repeat(width);
  });
}

/** Width of a line of cells drawn with two spaces between them. */
export function knobLineWidth(cells: readonly KnobCell[]): number {
  return cells.reduce((a, c) => a + c.text.length, 0) + 2 * cells.length;
}

/** Width of a line of cells drawn compact (one space between cells away from the focus). */
function compactLineWidth(cells: readonly KnobCell[], focus: number): number {
  return separators(cells, focus, true).reduce((a, x) => a + x.length, 0) + cells.reduce((a, c) => a + c.text.length, 0);
}

/**
 * Two lines: the context (model, GPUs, cluster, sequence, batch) and the plan knobs. A pinned knob shows
 * its value with `*`; a free one shows the selected plan's value. The focused knob is in brackets.
 */
export function KnobBar({ flags, knobs, selected, focus, title, columns, calibrated, gpu, servers }: KnobBarProps) {
  const line = (all: readonly KnobCell[], room: number) => {
    const { cells, compact } = fitCells(all, focus, room);
    const seps = separators(cells, focus, compact);
    const out = [];
    for (const [i, c] of cells.entries()) {
      const k = KNOBS[c.index]!;
      const focused = c.index === focus;
      out.push(<Styled key={`s${i}`}>{seps[i]}</Styled>);
      out.push(
        <Styled key={k.flag} inverse={focused} bold={c.pinned || k.kind === "context"} {...(c.pinned ? { color: "yellow" } : k.kind === "plan" ? { dim: !focused } : {})}>
          {c.text}
        </Styled>,
      );
    }
    out.push(<Styled key="end">{seps[cells.length]}</Styled>);
    return out;
  };
  const room = columns ?? Number.POSITIVE_INFINITY;
  const head = title ? "meshplan explore " : "";
  // what the context knobs do not show: a swapped GPU, pinned parameter servers
  const extraText = (gpu === undefined ? "" : ` gpu ${gpu} `) + (servers === undefined ? "" : ` ps ${servers} `);
  const context = knobCells("context", flags, knobs, selected);
  // "calibrated" gives way first where the context would not fit, then the other values are cut
  const showCalibrated = calibrated === true && head.length + compactLineWidth(context, focus) + extraText.length + CALIBRATED.length <= room;
  const contextRoom = room - head.length - extraText.length - (showCalibrated ? CALIBRATED.length : 0);
  return (
    <>
      <Line>
        {title ? <Styled color="cyan" bold>{head}</Styled> : null}
        {line(context, contextRoom)}
        {extraText !== "" ? <Styled bold>{extraText}</Styled> : null}
        {showCalibrated ? <Styled color="cyan">{CALIBRATED}</Styled> : null}
      </Line>
      <Line>{line(knobCells("plan", flags, knobs, selected), room)}</Line>
    </>
  );
}
