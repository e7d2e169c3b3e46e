import { barCells, runs, type Segment } from "../bars.js";
import { Line, Styled } from "./styled.js";

export interface BarProps {
  readonly label: string;
  readonly segments: readonly Segment[];
  readonly scale: number;
  readonly width: number;
  readonly total: string;
  readonly legend: string;
}

/** A stacked bar (glyphs readable without colour, coloured blocks with it) and its legend below. */
export function Bar({ label, segments, scale, width, total, legend }: BarProps) {
  const parts = runs(barCells(segments, scale, width)).map((r, k) => {
    const s = r.segment >= 0 ? segments[r.segment]! : undefined;
    return s === undefined
      ? <Styled key={k} dim>{".".repeat(r.length)}</Styled>
      : <Styled key={k} bg={s.color} color="black">{s.glyph.repeat(r.length)}</Styled>;
  });
  const pad = " ".repeat(label.length + 2);
  return (
    <>
      <Line>
        <Styled bold>{`${label} [`}</Styled>
        {parts}
        <Styled bold>{`] ${total}`}</Styled>
      </Line>
      <Line>{`${pad}${legend}`}</Line>
    </>
  );
}
