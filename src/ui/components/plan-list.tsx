import type { Estimate } from "../../planner/cost/types.js";
import { scrollTop } from "../layout.js";
import { listHeader, listRow, listTable } from "../rows.js";
import { Line, Styled } from "./styled.js";

export interface PlanListProps {
  readonly plans: readonly Estimate[];
  readonly selected: number;
  readonly marked: (e: Estimate) => boolean;
  readonly rows: number;
  readonly columns: number;
  /** Shown in place of the rows when there are none. */
  readonly empty: string;
  /** The model has experts: an ep column. */
  readonly experts?: boolean;
}

/** The ranked plans: `>` marks the selection, `*` a plan marked for comparison, `!` one that does not fit. */
export function PlanList({ plans, selected, marked, rows, columns, empty, experts }: PlanListProps) {
  const table = listTable(plans, columns, experts === true);
  const top = scrollTop(selected, rows, plans.length);
  const visible = plans.slice(top, top + rows);
  const lines = visible.map((e, k) => {
    const i = top + k;
    const sel = i === selected;
    const gutter = `${sel ? ">" : " "}${marked(e) ? "*" : " "}`;
    return (
      <Line key={i}>
        <Styled inverse={sel} bold={sel} {...(e.memory.fits ? {} : { color: "red" })}>{`${gutter}${listRow(table, e, i)}`}</Styled>
      </Line>
    );
  });
  for (let k = lines.length; k < rows; k++) {
    lines.push(<Line key={`blank${k}`}>{k === 0 ? <Styled color="red">{`  ${empty}`}</Styled> : " "}</Line>);
  }
  const header = `  ${listHeader(table)}`;
  const more = plans.length > rows ? ` ${top + 1}-${top + visible.length}/${plans.length}` : "";
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
