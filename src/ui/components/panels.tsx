import type { Estimate } from "../../planner/cost/types.js";
import type { Execution } from "../executor.js";
import { KEY_HELP } from "../keys.js";
import { compareRows } from "../rows.js";
import { wrap } from "./detail.js";
import { Line, Styled } from "./styled.js";

/** Two marked plans side by side: each quantity, plan A, plan B, and B against A. */
export function Compare({ a, b, columns }: { readonly a: Estimate; readonly b: Estimate; readonly columns: number }) {
  const rows = compareRows(a, b);
  const label = 16;
  const diff = 9;
  const col = Math.max(12, Math.floor((columns - label - diff - 4) / 2));
  const fmt = (r: readonly string[]) => `${r[0]!.padEnd(label)} ${r[1]!.slice(0, col).padEnd(col)} ${r[2]!.slice(0, col).padEnd(col)} ${r[3]!.padStart(diff)}`;
  return (
    <>
      <Line><Styled bold>{fmt(["compare", "A (marked first)", "B", "B vs A"])}</Styled></Line>
      {rows.map((r, i) => <Line key={i}>{fmt(r)}</Line>)}
    </>
  );
}

const LEGENDS = [
  "memory: P params  G grads  O optimizer  A activations  X other  . free",
  "time: C compute  T K E tp/cp/ep comm  P pp  D dp  U optimizer  B bubble",
  "timeline: F fwd B bwd W w-grad ~ comm (tp/cp/ep, dp/pp in line) O opt . idle",
  "list: > selected  * marked  ! does not fit     knobs: * pinned  [ ] chosen",
];

export function Help() {
  const width = Math.max(...KEY_HELP.map(([k]) => k.length)) + 2;
  return (
    <>
      <Line><Styled bold>Keys (Esc or ? to go back)</Styled></Line>
      {KEY_HELP.map(([k, what]) => (
        <Line key={k}>
          <Styled color="cyan" bold>{k.padEnd(width)}</Styled>
          {what}
        </Line>
      ))}
      <Line> </Line>
      {LEGENDS.map((l) => <Line key={l}>{l}</Line>)}
    </>
  );
}

/** `x`: a progress bar while the plan runs, then predicted against measured. */
export function ExecuteView({ run, columns }: { readonly run: Execution; readonly columns: number }) {
  const title = `Execute ${run.title} (${run.state === "running" ? "Esc stops the run" : "Esc: back"})`;
  const head = <>{wrap(title, columns).map((l, i) => <Line key={`h${i}`}><Styled bold>{l}</Styled></Line>)}</>;
  // Messages, notes and the progress label wrap rather than lose their ends (which name what would be valid).
  if (run.state === "failed") return <>{head}{wrap(run.message, columns).map((l, i) => <Line key={i}><Styled color="red">{l}</Styled></Line>)}</>;
  if (run.state === "stopped") return <>{head}{wrap("stopped before its end: nothing measured", columns).map((l, i) => <Line key={i}>{l}</Line>)}</>;
  if (run.state === "running") {
    const percent = `${(100 * run.fraction).toFixed(0)}%`;
    const width = Math.max(10, columns - 3 - percent.length);
    const filled = Math.round(Math.max(0, Math.min(1, run.fraction)) * width);
    return (
      <>
        {head}
        <Line>{`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${percent}`}</Line>
        {wrap(run.label, columns).map((l, i) => <Line key={`p${i}`}>{l}</Line>)}
      </>
    );
  }
  const t = run.table;
  const q = Math.max(8, ...t.rows.map((r) => r.quantity.length));
  const v = Math.max(10, Math.floor((columns - q - 2) / 2));
  return (
    <>
      {head}
      <Line><Styled bold>{t.title}</Styled></Line>
      <Line><Styled bold>{`${"".padEnd(q)} ${"predicted".padStart(v)} ${"measured".padStart(v)}`}</Styled></Line>
      {t.rows.map((r) => <Line key={r.quantity}>{`${r.quantity.padEnd(q)} ${r.predicted.padStart(v)} ${r.measured.padStart(v)}`}</Line>)}
      {(t.notes ?? []).flatMap((n) => wrap(n, columns).map((l, i) => <Line key={`${n}/${i}`}>{l}</Line>))}
    </>
  );
}
