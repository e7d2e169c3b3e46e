import { describe, expect, it } from "vitest";
import { renderTimeline, zoomSeconds } from "../../src/cli/timeline.js";
import { simulate, simulateInput } from "../../src/simulator/simulate.js";
import { planFor, shapeOf } from "../helpers.js";
import { stage, uniform } from "./fixtures.js";

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const strip = (s: string) => s.replace(ANSI, "");

describe("terminal timeline", () => {
  const t = simulateInput(uniform("zb-h1", 4, 8));

  it("one row per stage, within the terminal width, with distinct glyphs for forward, backward, W and idle", () => {
    for (const columns of [60, 100, 180]) {
      const text = renderTimeline(t, { columns, color: false });
      const lines = text.split("\n");
      for (const line of lines) expect(line.length).toBeLessThanOrEqual(columns);
      const rows = lines.filter((l) => l.startsWith("stage "));
      expect(rows).toHaveLength(4);
      for (const g of ["F", "B", "W", "."]) expect(rows.join("")).toContain(g);
      expect(text).not.toMatch(ANSI);
    }
  });

  it("the last stage starts after p - 1 forwards and stage 0 idles while the first gradient comes back", () => {
    // 21 time units (m + p - 1 = 7 rounds of F + B + W); 106 columns leave 84 for the bar: 4 per unit.
    const text = renderTimeline(simulateInput(uniform("1f1b", 4, 4)), { columns: 106, color: false });
    const bar = (row: string) => row.slice(row.indexOf("|") + 1, row.lastIndexOf("|"));
    const rows = text.split("\n").filter((l) => l.startsWith("stage ")).map(bar);
    expect(rows[0]).toHaveLength(84);
    expect(rows[3]!.startsWith("............FFFF")).toBe(true);
    expect(rows[0]!.startsWith("FFFFFFFFFFFFFFFF....")).toBe(true);
  });

  it("draws collectives that hold a stage (in line, or blocking sends) as communication, not as idle", () => {
    const shape = shapeOf("dgx-h100", 16);
    for (const knobs of [{ zero: 3, dpCommBlocking: true }, { zero: 1, ppBlockingSends: true }] as const) {
      const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp: 2, globalBatch: 32, flashAttention: true, ...knobs });
      const t = simulate(model, shape, plan).timeline;
      const rows = renderTimeline(t, { columns: 120, color: false }).split("\n").filter((l) => l.startsWith("stage "));
      expect(rows).toHaveLength(2);
      // Each row's idle share is the simulator's own: the time its compute and collective streams are free
      // (in-line collectives and blocking sends run on the compute stream).
      rows.forEach((row, r) => {
        const idle = Number(/([0-9.]+)% idle/.exec(row)![1]) / 100;
        expect(idle, `${JSON.stringify(knobs)} ${row}`).toBeCloseTo(t.ranks[r]!.idleFraction, 3);
      });
    }
  });

  it("colours with ANSI codes only when asked, and the glyphs stay the same", () => {
    const plain = renderTimeline(t, { columns: 100, color: false });
    const coloured = renderTimeline(t, { columns: 100, color: true });
    expect(coloured).toMatch(ANSI);
    expect(strip(coloured)).toBe(plain);
  });

  it("elides middle rows beyond maxRows and zooms into the fill when the step has many micro-batches", () => {
    const wide = simulateInput(uniform("1f1b", 40, 200, 1, stage()));
    const text = renderTimeline(wide, { columns: 100, color: false, maxRows: 10 });
    expect(text.split("\n").filter((l) => l.startsWith("stage "))).toHaveLength(10);
    expect(text).toContain("30 more");
    const zoom = zoomSeconds(wide, 100)!;
    expect(zoom).toBeGreaterThan(0);
    expect(zoom).toBeLessThan(wide.spanSeconds / 2);
    const start = renderTimeline(wide, { columns: 100, color: false, fromSeconds: 0, toSeconds: zoom, maxRows: 50 });
    expect(start.split("\n").find((l) => l.startsWith("stage 39 "))).toMatch(/\|\.{10,}F/);
    expect(zoomSeconds(t, 200)).toBeUndefined();
  });
});
