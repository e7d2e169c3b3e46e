import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { loadModel } from "../../src/cli/catalog.js";
import { barCells, memorySegments, runs, timeSegments } from "../../src/ui/bars.js";
import { ExecuteError, executePlan, tooLargeToExecute } from "../../src/ui/executor.js";
import { commandFor } from "../../src/ui/keys.js";
import { KNOBS, knobOptions, stepValue, withFlag, freeAll, type KnobContext } from "../../src/ui/knobs.js";
import { layout, scrollTop, timelineRows, tooSmall } from "../../src/ui/layout.js";
import { compareRows, listHeader, listRow, linkLines } from "../../src/ui/rows.js";
import { planFileName, savePlan } from "../../src/ui/save.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

const model = loadModel("llama3-70b");
const shape = shapeOf("dgx-h100", 64);
const est = (input: Parameters<typeof resolvePlan>[2]) => estimate(model, shape, resolvePlan(model, shape, input));
const knobCtx: KnobContext = { model, cluster: "dgx-h100", gpus: 64, modelNames: ["a", "b", "c"], clusterNames: ["x", "y"], seqLen: 8192, globalBatch: 512 };

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

describe("keys", () => {
  it("map arrows, vim keys and knob shortcuts", () => {
    expect(commandFor("", { downArrow: true }, 5)).toEqual({ kind: "move", delta: 1 });
    expect(commandFor("k", {}, 5)).toEqual({ kind: "move", delta: -1 });
    expect(commandFor("", { return: true }, 7)).toEqual({ kind: "pin", knob: 7 });
    expect(commandFor("t", {}, 0)).toEqual({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "tp") });
    expect(commandFor("z", {}, 0)).toEqual({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "zero") });
    expect(commandFor("c", { ctrl: true }, 0)).toEqual({ kind: "quit" });
    expect(commandFor("Q", {}, 0)).toBeUndefined();
    // every plan knob has its own shortcut
    const shortcuts = KNOBS.filter((k) => k.kind === "plan").map((k) => k.shortcut);
    expect(new Set(shortcuts).size).toBe(shortcuts.length);
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
  it("list rows fit 80 columns and line up with the header", () => {
    const e = est({ tp: 8, pp: 4, virtualStages: 2, schedule: "interleaved" });
    const row = listRow(e, 9, 80);
    expect(row.length + 2).toBeLessThanOrEqual(80);
    expect(row.length).toBe(listHeader(80).length);
    expect(listRow(e, 0, 120).length).toBe(listHeader(120).length);
    expect(row).toContain("int/2");
  });
  it("a layer list too long for its column ends in '..', not cut where it reads as a whole list", () => {
    // llama3-70b: 80 layers over 8 stages
    const e = est({ tp: 8, pp: 8, layersPerStage: [8, 8, 12, 12, 12, 12, 8, 8] });
    const cells = listRow(e, 0, 160).split(/\s+/);
    expect(cells).toContain("8/8/12/12..");
    expect(cells.some((c) => c.startsWith("8/8/12/12/1"))).toBe(false);
  });
  it("bytes per link name the link each group crosses", () => {
    const lines = linkLines(est({ tp: 8, pp: 4 }), shape);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^nvlink4 \(369 GB\/s\): tp /);
    expect(lines[1]).toMatch(/^infiniband-ndr \(47 GB\/s\): pp .*, dp /);
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

describe("the executor seam", () => {
  const tiny = loadFlags({ model: "tiny-gpt", gpus: 4 }).context;
  const plan = resolvePlan(tiny.model, tiny.shape, { dp: 4 });
  it("refuses models too large to run here", async () => {
    expect(tooLargeToExecute(model, resolvePlan(model, shape, { tp: 8, pp: 8 }))).toMatch(/70\.6 B parameters/);
    expect(tooLargeToExecute(tiny.model, plan)).toBeUndefined();
    await expect(executePlan(model, shape, resolvePlan(model, shape, { tp: 8 }), () => {})).rejects.toMatchObject({ code: "too-large" });
  });
  it("says the executor is not available when it exports nothing usable, and passes its table through", async () => {
    const err = await executePlan(tiny.model, tiny.shape, plan, () => {}, async () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecuteError);
    expect((err as ExecuteError).code).toBe("unavailable");
    expect((err as Error).message).toContain("executor not available yet");
    const table = { title: "t", rows: [] };
    await expect(executePlan(tiny.model, tiny.shape, plan, () => {}, async () => ({ executePlan: async () => table }))).resolves.toBe(table);
    const failing = async () => ({ executePlan: async () => Promise.reject(new Error("rank 2 died")) });
    await expect(executePlan(tiny.model, tiny.shape, plan, () => {}, failing)).rejects.toMatchObject({ code: "failed", message: "execution failed: rank 2 died" });
  });
  it("hands the executor the profile meshplan calibrate saved, and none where there is none", async () => {
    const seen: unknown[] = [];
    const executor = async () => ({
      executePlan: async (_m: unknown, _s: unknown, _p: unknown, o: { saved?: unknown }) => {
        seen.push(o.saved);
        return { title: "t", rows: [] };
      },
    });
    const saved = { profile: { version: 1 } as never, file: "meshplan-profile.json" };
    await executePlan(tiny.model, tiny.shape, plan, () => {}, executor, () => saved);
    await executePlan(tiny.model, tiny.shape, plan, () => {}, executor, () => undefined);
    expect(seen).toEqual([saved, undefined]);
  });
});
