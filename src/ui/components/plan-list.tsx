import type { Estimate } from "../../planner/cost/types.js";
import { scrollTop } from "../layout.js";
import { listHeader, listRow, listTable } from "../rows.js";
import { wrap } from "./detail.js";
import { Line, Styled } from "./styled.js";

export interface PlanListProps {
  readonly plans: readonly Estimate[];
  readonly selected: number;
  readonly marked: (e: Estimate) => boolean;
  readonly rows: number;
  readonly columns: number;
  /** Shown in place of the rows when there are none (wrapped: an error's reason is read whole). */
  readonly empty: string;
  /** The list is the previous one while a re-plan runs: dimmed, and the header says so. */
  readonly stale?: boolean;
  /** The model has experts: an ep column. */
  readonly experts?: boolean;
}

/** The ranked plans: `>` marks the selection, `*` a plan marked for comparison, `!` one that does not fit. */
export function PlanList({ plans, selected, marked, rows, columns, empty, experts, stale }: PlanListProps) {
  const table = listTable(plans, columns, experts === true);
  const top = scrollTop(selected, rows, plans.length);
  const visible = plans.slice(top, top + rows);
  const lines = visible.map((e, k) => {
    const i = top + k;
    const sel = i === selected;
    const gutter = `${sel ? ">" : " "}${marked(e) ? "*" : " "}`;
    return (
      <Line key={i}>
        <Styled inverse={sel} bold={sel} dim={stale === true} {...(e.memory.fits ? {} : { color: "red" })}>{`${gutter}${listRow(table, e, i)}`}</Styled>
      </Line>
    );
  });
  // no rows: the message over as many lines as it needs (the detail below is empty then)
  const message = lines.length === 0 ? wrap(empty, columns - 2) : [];
  for (let k = lines.length; k < Math.max(rows, message.length); k++) {
    lines.push(<Line key={`blank${k}`}>{k < message.length ? <Styled color="red">{`  ${message[k]}`}</Styled> : " "}</Line>);
  }
  const header = `  ${listHeader(table)}`;
  // " (old list)" fits the room kept for the page indicator; it says without colour what the dimming says
  const more = stale === true ? " (old list)" : plans.length > rows ? ` ${top + 1}-${top + visible.length}/${plans.length}` : "";
  return (
    <>
      <Line>
        <Styled bold>{header}</Styled>
        <Styled dim>{header.length + more.length <= columns ? more : ""}</Styled>
      </Line>
      {lines}
    </>
  );
}
