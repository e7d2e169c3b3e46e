import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { loadModel } from "../../src/cli/catalog.js";
import { barCells, memoryLegend, memorySegments, runs, timeLegend, timeSegments } from "../../src/ui/bars.js";
import { whyLines } from "../../src/ui/components/detail.js";
import { commandFor, unboundKey } from "../../src/ui/keys.js";
import { KNOBS, knobApplies, knobOptions, knobValue, nextKnob, showValue, stepValue, withFlag, freeAll, type KnobContext } from "../../src/ui/knobs.js";
import { layoutExists } from "../../src/planner/partition/problem.js";
import { layout, scrollTop, timelineRows, tooSmall } from "../../src/ui/layout.js";
import { compareRows, listHeader, listRow, listTable, linkLines, scheduleShort } from "../../src/ui/rows.js";
import { planFileName, savePlan } from "../../src/ui/save.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";
import { resolveLinks } from "../../src/planner/cost/communication.js";
import { hintText } from "../../src/ui/components/status.js";

const model = loadModel("llama3-70b");
const shape = shapeOf("dgx-h100", 64);
const est = (input: Parameters<typeof resolvePlan>[2]) => estimate(model, shape, resolvePlan(model, shape, input));
const knobCtx: KnobContext = { model, cluster: "dgx-h100", gpus: 64, shape, modelNames: ["a", "b", "c"], clusterNames: ["x", "y"], seqLen: 8192, globalBatch: 512 };

describe("knobs", () => {
  it("step numeric values to the nearest beyond the current one, and cycle the others", () => {
    expect(stepValue([1, 2, 4, 8], 2, 1)).toBe(4);
    expect(stepValue([1, 2, 4, 8], 3, -1)).toBe(2); // a value not in the list
    expect(stepValue([1, 2, 4, 8], 8, 1)).toBe(8); // no larger one
    expect(stepValue(["a", "b", "c"], "c", 1)).toBe("a");
    expect(stepValue([true, false], undefined, 1)).toBe(true);
  });
  it("offer only tensor-parallel degrees the model's heads and MLP split into", () => {
    const tp = KNOBS.find((k) => k.flag === "tp")!;
    expect(knobOptions(tp, knobCtx)).toEqual([1, 2, 4, 8, 16, 32, 64]); // 64 heads, 8 KV heads (replicated beyond), 28672 MLP
    const mb = KNOBS.find((k) => k.flag === "micro-batch")!;
    expect(knobOptions(mb, knobCtx).every((b) => 512 % (b as number) === 0)).toBe(true);
  });
  it("free a schedule's virtual stages with it, and free every plan knob at once", () => {
    expect(withFlag({ schedule: "interleaved", vpp: 2 }, "schedule", "1f1b")).toEqual({ schedule: "1f1b" });
    expect(freeAll({ model: "tiny-gpt", tp: 2, zero: 1, sp: false })).toEqual({ model: "tiny-gpt" });
  });
});

describe("the ep, vpp and schedule knobs", () => {
  const knob = (flag: string) => KNOBS.find((k) => k.flag === flag)!;
  it("offer the virtual stages the search can lay out, and ep only for models with experts", () => {
    const vpp = knob("vpp");
    // 80 layers over 2 stages: v with at most 2 layers short of a multiple of v (layoutExists), up to 16
    expect(knobOptions(vpp, knobCtx)).toEqual([2, 3, 4, 5, 8, 9, 10, 16]);
    for (const pp of [2, 4, 8]) {
      const options = knobOptions(vpp, { ...knobCtx, pp });
      expect(options.length).toBeGreaterThan(2);
      for (const v of options) expect(layoutExists(80, pp, v as number)).toBe(true);
    }
    expect(knobOptions(vpp, { ...knobCtx, pp: 4 })).toEqual(expect.arrayContaining([2, 4, 8]));
    const mixtral = loadModel("mixtral-8x7b");
    expect(knobOptions(knob("ep"), { ...knobCtx, model: mixtral, gpus: 32 })).toEqual([1, 2, 4, 8]);
    expect(knobApplies(knob("ep"), mixtral)).toBe(true);
    expect(knobApplies(knob("ep"), model)).toBe(false);
    // h/l pass over ep for a dense model, and stop on it for one with experts
    const cp = KNOBS.findIndex((k) => k.flag === "cp");
    expect(KNOBS[nextKnob(cp, 1, model)]!.flag).toBe("micro-batch");
    expect(KNOBS[nextKnob(cp, 1, mixtral)]!.flag).toBe("ep");
    expect(KNOBS[nextKnob(cp + 2, -1, model)]!.flag).toBe("cp");
  });
  it("show '-' for the schedule and its virtual stages where the plan has no pipeline, as the list does", () => {
    const flat = est({ tp: 8, pp: 1 }).plan;
    expect(scheduleShort(flat)).toBe("-");
    expect(showValue(knobValue(knob("schedule"), {}, knobCtx, flat))).toBe("-");
    expect(showValue(knobValue(knob("vpp"), {}, knobCtx, flat))).toBe("-");
    const interleaved = est({ tp: 8, pp: 4, virtualStages: 4, schedule: "interleaved" }).plan;
    expect(knobValue(knob("schedule"), {}, knobCtx, interleaved)).toBe("interleaved");
    expect(knobValue(knob("vpp"), {}, knobCtx, interleaved)).toBe(4);
    expect(knobValue(knob("vpp"), {}, knobCtx, est({ tp: 8, pp: 4, schedule: "1f1b" }).plan)).toBeUndefined();
  });
  it("pinning virtual stages frees a pinned schedule that has none", () => {
    expect(withFlag({ schedule: "1f1b" }, "vpp", 4)).toEqual({ vpp: 4 });
    expect(withFlag({ schedule: "interleaved" }, "vpp", 8)).toEqual({ schedule: "interleaved", vpp: 8 });
    expect(withFlag({ schedule: "interleaved", vpp: 8 }, "schedule", undefined)).toEqual({ vpp: 8 }); // still interleaved
  });
});

describe("keys", () => {
  it("map arrows, vim keys and knob shortcuts", () => {
    expect(commandFor("", { downArrow: true }, 5)).toEqual({ kind: "move", delta: 1 });
    expect(commandFor("k", {}, 5)).toEqual({ kind: "move", delta: -1 });
    expect(commandFor("", { return: true }, 7)).toEqual({ kind: "pin", knob: 7 });
    expect(commandFor("t", {}, 0)).toEqual({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "tp") });
    expect(commandFor("z", {}, 0)).toEqual({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "zero") });
    expect(commandFor("c", { ctrl: true }, 0)).toEqual({ kind: "quit" });
    expect(commandFor("Q", {}, 0)).toBeUndefined();
    expect(commandFor("m", {}, 0)).toEqual({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "ep") });
    expect(commandFor("i", {}, 0)).toEqual({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "vpp") });
    // an unbound key says so; keys that are no characters stay silent
    expect(unboundKey("a", {})).toBe("a: no such key (? shows the keys)");
    expect(unboundKey("\t", {})).toBeUndefined();
    expect(unboundKey("a", { ctrl: true })).toBeUndefined();
    // every plan knob has its own shortcut
    const shortcuts = KNOBS.filter((k) => k.kind === "plan").map((k) => k.shortcut);
    expect(new Set(shortcuts).size).toBe(shortcuts.length);
  });
});

describe("key hints", () => {
  it("a wider terminal adds hints in order of use, never trades one for another", () => {
    const hints = (w: number) => hintText(w).split("  ");
    for (let w = 80; w < 200; w++) {
      expect(hintText(w).length).toBeLessThanOrEqual(w);
      expect(hints(w + 1)).toEqual(expect.arrayContaining(hints(w)));
    }
    expect(hints(80)).toEqual(expect.arrayContaining(["j/k plan", "enter pin", "v compare", "? help", "q quit"]));
    expect(hints(100)).toEqual(expect.arrayContaining(["v compare", "s save", "x run"]));
  });
});

describe("layout", () => {
  it("fits 80x24 and gives larger terminals more list and timeline", () => {
    expect(tooSmall(79, 24)).toBe(true);
    expect(tooSmall(80, 23)).toBe(true);
    const small = layout(80, 24, 10);
    expect(small.height).toBe(23);
    expect(small.listRows).toBeGreaterThanOrEqual(4);
    expect(small.detailLines).toBeGreaterThanOrEqual(6); // a title, 3 stages at least, the axis
    const big = layout(120, 40, 10);
    expect(big.listRows).toBe(10);
    expect(big.detailLines).toBeGreaterThan(small.detailLines);
  });
  it("keeps the selection in the list window and elides timeline rows that do not fit", () => {
    expect(scrollTop(0, 5, 10)).toBe(0);
    expect(scrollTop(9, 5, 10)).toBe(5);
    expect(scrollTop(6, 5, 10)).toBe(4);
    expect(timelineRows(8, 4)).toBe(4);
    expect(timelineRows(8, 16)).toBe(5); // 5 rows + the "... more ..." line + title + axis = 8
  });
});

/**
 * A list row read as the screen shows it: each column right-aligned under its head, so a cell is the row's
 * text between the end of the previous head and the end of its own (a row off its header reads wrong).
 */
function cellsUnderHeads(header: string, row: string): Record<string, string> {
  const cells: Record<string, string> = {};
  let from = 0;
  for (const head of header.matchAll(/\S+/g)) {
    const end = head.index + head[0].length;
    cells[head[0]] = row.slice(from, end).trim();
    from = end;
  }
  if (row.slice(from).trim() !== "") cells["(past the last head)"] = row.slice(from).trim();
  return cells;
}

/** "1.23 s", "45.6 ms", "7.8 us": the seconds shown, and half the last digit shown (the rounding), in seconds. */
function secondsOf(cell: string): { readonly seconds: number; readonly rounding: number } {
  const m = /^(\d+)\.?(\d*) (s|ms|us)$/.exec(cell);
  if (m === null) throw new Error(`not a time: ${cell}`);
  const unitSeconds = { s: 1, ms: 1e-3, us: 1e-6 }[m[3] as "s" | "ms" | "us"];
  return { seconds: Number(`${m[1]}.${m[2]}`) * unitSeconds, rounding: 0.5 * 10 ** -m[2]!.length * unitSeconds };
}

/** "41.2%" as 41.2. */
function percentOf(cell: string): number {
  const m = /^(-?[\d.]+)%$/.exec(cell);
  if (m === null) throw new Error(`not a percentage: ${cell}`);
  return Number(m[1]);
}

describe("bars and rows", () => {
  it("split the cells in proportion, adding up exactly, and draw free space up to the capacity", () => {
    const e = est({ tp: 8, pp: 4, zero: 1 });
    const cells = barCells(memorySegments(e), e.memory.capacityBytes, 50);
    expect(cells).toHaveLength(50);
    const used = cells.filter((c) => c >= 0).length;
    expect(used).toBe(Math.round((e.memory.peakBytesPerGpu / e.memory.capacityBytes) * 50));
    const time = barCells(timeSegments(e), e.time.stepSeconds, 40);
    expect(time.every((c) => c >= 0)).toBe(true); // the parts add up to the step
    expect(runs([0, 0, 1, -1, -1]).map((r) => r.length)).toEqual([2, 1, 2]);
  });
  it("fill the bar without free space when memory is over capacity", () => {
    const e = est({ tp: 1, pp: 1, zero: 0 });
    expect(e.memory.fits).toBe(false);
    expect(barCells(memorySegments(e), e.memory.capacityBytes, 30).every((c) => c >= 0)).toBe(true);
  });
  it("list rows fit 80 columns and show each plan's values under their heads", () => {
    // llama3-70b on 64 GPUs: dp = 64 / (tp 8 * pp 4) = 2; 80 layers over 4 stages, 20 each
    const e = est({ tp: 8, pp: 4, virtualStages: 2, schedule: "interleaved", microBatch: 1, zero: 1, recompute: "selective", sequenceParallel: true });
    const t = listTable([e], 80, false);
    const row = listRow(t, e, 0);
    expect(row.length + 2).toBeLessThanOrEqual(80);
    const cells = cellsUnderHeads(listHeader(t), row);
    // the capacity as precise as the use (h100-sxm: 81,559 MiB = 79.6 GiB): 79.7 GiB must not read 79.7/80
    const gib = `${(e.memory.peakBytesPerGpu / 2 ** 30).toFixed(1)}/79.6${e.memory.fits ? "" : "!"}`;
    expect(cells).toEqual({ "#": "1", dp: "2", tp: "8", pp: "4", cp: "1", mb: "1", sched: "int/2", Z: "1", rc: "sel", "GiB/GPU": gib, step: expect.any(String), MFU: expect.any(String) });
    const step = secondsOf(cells["step"]!);
    expect(Math.abs(step.seconds - e.time.stepSeconds)).toBeLessThanOrEqual(step.rounding * (1 + 1e-9));
    expect(Math.abs(percentOf(cells["MFU"]!) - 100 * e.throughput.mfu)).toBeLessThanOrEqual(0.05);
    // 120 columns add the layers, SP, tokens/s, bubble and comm columns
    const wideTable = listTable([e], 120, false);
    const wide = cellsUnderHeads(listHeader(wideTable), listRow(wideTable, e, 0));
    expect(Object.keys(wide)).toEqual(["#", "dp", "tp", "pp", "cp", "mb", "sched", "Z", "rc", "layers", "SP", "GiB/GPU", "step", "MFU", "tokens/s", "bubble", "comm"]);
    expect([wide["layers"], wide["SP"], wide["GiB/GPU"]]).toEqual(["even", "on", gib]);
    expect(Number(wide["tokens/s"]!.replaceAll(",", ""))).toBe(Math.round(e.throughput.tokensPerSecond));
    expect(Math.abs(percentOf(wide["bubble"]!) - 100 * e.pipeline.bubbleFraction)).toBeLessThanOrEqual(0.05);
    const b = e.time.breakdown;
    const exposed = b.tpCommSeconds + b.cpCommSeconds + b.epCommSeconds + b.ppCommSeconds + b.dpCommSeconds;
    expect(Math.abs(percentOf(wide["comm"]!) - (100 * exposed) / e.time.stepSeconds)).toBeLessThanOrEqual(0.05);
  });
  it("a layer list too long for its column ends in '..', not cut where it reads as a whole list", () => {
    // llama3-70b: 80 layers over 8 stages
    const e = est({ tp: 8, pp: 8, layersPerStage: [8, 8, 12, 12, 12, 12, 8, 8] });
    const cells = listRow(listTable([e], 160, false), e, 0).split(/\s+/);
    expect(cells).toContain("8/8/12/12..");
    expect(cells.some((c) => c.startsWith("8/8/12/12/1"))).toBe(false);
  });
  it("an ep column for models with experts, and ep in the compare view's mesh and the saved file's name", () => {
    const mixtral = loadFlags({ model: "mixtral-8x7b", gpus: 32 }).context;
    const moe = (input: Parameters<typeof resolvePlan>[2]) => estimate(mixtral.model, mixtral.shape, resolvePlan(mixtral.model, mixtral.shape, input));
    const a = moe({ tp: 2, pp: 4, cp: 4, ep: 2 }), b = moe({ tp: 2, pp: 4, cp: 4, ep: 4 });
    const t = listTable([a, b], 80, true);
    const head = listHeader(t).trim().split(/\s+/);
    expect(head.slice(0, 7)).toEqual(["#", "dp", "tp", "pp", "cp", "ep", "mb"]);
    expect([a, b].map((e, i) => listRow(t, e, i).trim().split(/\s+/)[5])).toEqual(["2", "4"]);
    expect(listHeader(listTable([a], 80, false))).not.toMatch(/\bep\b/); // dense models: no column
    const mesh = compareRows(a, b).find((r) => r[0] === "mesh")!;
    expect(mesh.slice(1)).toEqual(["dp 1 tp 2 pp 4 cp 4 ep 2", "dp 1 tp 2 pp 4 cp 4 ep 4", "differs"]);
    expect(planFileName(a)).toMatch(/-cp4-ep2-mb/);
    expect(planFileName(b)).toMatch(/-cp4-ep4-mb/);
  });
  it("keeps room for the page indicator at 80 columns, the ep column included", () => {
    const plans = [est({ tp: 8, pp: 4 }), est({ tp: 8, pp: 2, recompute: "full" }), est({ tp: 4, pp: 4, virtualStages: 4, schedule: "interleaved" })];
    for (const experts of [false, true]) expect(2 + listHeader(listTable(plans, 80, experts)).length + " 96-100/100".length).toBeLessThanOrEqual(80);
  });
  it("legends that fit their width: labels where there is room, every amount always", () => {
    const e = est({ tp: 2, pp: 4, cp: 8, zero: 1 });
    const amounts = memorySegments(e).map((s) => (s.value / 2 ** 30).toFixed(1));
    for (const width of [200, 72, 50]) {
      const legend = memoryLegend(e, width);
      expect(legend.length).toBeLessThanOrEqual(width);
      for (const a of amounts) expect(legend).toContain(a);
      expect(legend).toMatch(/GiB$/);
    }
    expect(memoryLegend(e, 200)).toMatch(/^P params [\d.]+  G grads/);
    expect(timeLegend(e, 72).length).toBeLessThanOrEqual(72);
  });
  it("the why sentences: whole ones only, as many as the spare lines hold", () => {
    const sentences = ["one two three", "four five six seven eight nine ten eleven twelve", "end"];
    expect(whyLines(sentences, 20, 10)).toEqual(["- one two three", "- four five six", "  seven eight nine", "  ten eleven twelve", "- end"]);
    expect(whyLines(sentences, 20, 3)).toEqual(["- one two three"]); // the second needs 3 more lines: left out, not cut
    expect(whyLines(sentences, 20, 1)).toEqual([]);
  });
  it("bytes per link name the link each group crosses", () => {
    const lines = linkLines(est({ tp: 8, pp: 4 }), shape);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^nvlink4 \(369 GB\/s\): tp /);
    expect(lines[1]).toMatch(/^infiniband-ndr \(47 GB\/s\): pp .*, dp /);
  });
  it("each group's own achieved rate where it differs from its link's first group (pp sends reach less than cp's collectives)", () => {
    const e = est({ tp: 4, pp: 2, cp: 4 }); // cp, pp and dp all cross the network
    const links = resolveLinks(e.plan, shape);
    const gb = (g: "tp" | "cp" | "pp" | "dp") => `${(links[g].bytesPerSecond / 1e9).toFixed(0)} GB/s`;
    expect(gb("pp")).not.toBe(gb("cp")); // the case the line used to get wrong
    for (const line of linkLines(e, shape)) {
      const [, head, parts] = /^\S+ \(([\d]+ GB\/s)\): (.*)$/.exec(line)!;
      for (const part of parts!.split(", ")) {
        const [, group, own] = /^(\w+) [\d.]+ \w?B(?: \((\d+ GB\/s)\))?$/.exec(part)!;
        expect(own ?? head, `${group} in "${line}"`).toBe(gb(group as "tp" | "cp" | "pp" | "dp"));
      }
    }
  });
  it("bytes per link fit the room the screen gives them: the rates go before the bytes", () => {
    const e = est({ tp: 4, pp: 2, cp: 4 }); // three groups on the network, one with its own rate
    const full = linkLines(e, shape);
    const network = full.find((l) => l.startsWith("infiniband"))!;
    expect(network).toMatch(/\(\d+ GB\/s\):.*\(\d+ GB\/s\)/); // the link's rate and a group's own
    const bytes = (l: string) => [...l.matchAll(/(\w+) ([\d.]+ \w?B)/g)].map((m) => `${m[1]} ${m[2]}`);
    // 80 columns less the label: 57 characters
    for (const width of [network.length, network.length - 1, 57, 40]) {
      const fitted = linkLines(e, shape, width).find((l) => l.startsWith("infiniband"))!;
      expect(bytes(fitted)).toEqual(bytes(network));
      if (width >= network.length) expect(fitted).toBe(network);
      else expect(fitted.length < network.length).toBe(true);
    }
    // with room for the link's rate but not a group's own, the link's stays
    const noOwn = linkLines(e, shape, network.length - 1).find((l) => l.startsWith("infiniband"))!;
    expect(noOwn).toMatch(/^infiniband-ndr \(\d+ GB\/s\): [^(]*$/);
  });
  it("compare shows B against A", () => {
    const rows = compareRows(est({ tp: 8, pp: 4 }), est({ tp: 4, pp: 8 }));
    expect(rows.find((r) => r[0] === "mesh")![3]).toBe("differs");
    expect(rows.find((r) => r[0] === "step")![3]).toMatch(/^[+-]\d+\.\d%$/);
  });
});

describe("save", () => {
  it("writes the Estimate under a name that says which plan, leaving no temporary file", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-save-"));
    const e = est({ tp: 8, pp: 4, zero: 1 });
    const path = savePlan(dir, e);
    expect(readdirSync(dir)).toEqual([planFileName(e)]);
    expect(planFileName(e)).toMatch(/^meshplan-llama3-70b-64xh100-sxm-tp8-pp4-dp2-cp1-mb1-1f1b-z1-none-[0-9a-f]{8}\.json$/);
    // the same plan again: the same file; a plan that differs only where the name is silent: another
    expect(planFileName(est({ tp: 8, pp: 4, zero: 1 }))).toBe(planFileName(e));
    const other = est({ tp: 8, pp: 4, zero: 1, layersPerStage: [19, 21, 21, 19] });
    expect(planFileName(other)).not.toBe(planFileName(e));
    expect(planFileName({ ...e, plan: { ...e.plan, seqLen: 4096 } })).not.toBe(planFileName(e));
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual(JSON.parse(JSON.stringify(e)));
    expect(() => savePlan(join(dir, "missing"), e)).toThrow();
    expect(readdirSync(dir)).toHaveLength(1);
    rmSync(dir, { recursive: true });
  });
});
