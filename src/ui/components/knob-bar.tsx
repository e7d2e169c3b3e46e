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
}

const MAX_VALUE = 24;

export interface KnobCell {
  readonly index: number;
  readonly text: string;
  readonly pinned: boolean;
}

/** The cells of one knob line: "label value", `*` when pinned; knobs that do not apply to the model are left out. */
export function knobCells(kind: "context" | "plan", flags: Flags, knobs: KnobContext, selected: Plan | undefined): KnobCell[] {
  return KNOBS.flatMap((k, index) => {
    if (k.kind !== kind || !knobApplies(k, knobs.model)) return [];
    const pinned = isPinned(flags, k);
    let value = shortValue(knobValue(k, flags, knobs, selected));
    if (value.length > MAX_VALUE) value = `...${value.slice(-(MAX_VALUE - 3))}`;
    return [{ index, text: `${k.label} ${value}${pinned ? "*" : ""}`, pinned }];
  });
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

/**
 * Two lines: the context (model, GPUs, cluster, sequence, batch) and the plan knobs. A pinned knob shows
 * its value with `*`; a free one shows the selected plan's value. The focused knob is in brackets.
 */
export function KnobBar({ flags, knobs, selected, focus, title, columns, calibrated, gpu }: KnobBarProps) {
  const line = (cells: readonly KnobCell[], room: number) => {
    const seps = separators(cells, focus, knobLineWidth(cells) > room);
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
  return (
    <>
      <Line>
        {title ? <Styled color="cyan" bold>meshplan explore </Styled> : null}
        {line(knobCells("context", flags, knobs, selected), Number.POSITIVE_INFINITY)}
        {gpu !== undefined ? <Styled bold> gpu {gpu} </Styled> : null}
        {calibrated === true ? <Styled color="cyan"> calibrated</Styled> : null}
      </Line>
      <Line>{line(knobCells("plan", flags, knobs, selected), room)}</Line>
    </>
  );
}
