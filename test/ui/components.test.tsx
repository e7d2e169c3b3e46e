import { Box } from "ink";
import { render } from "ink-testing-library";
import { afterEach, describe, expect, it } from "vitest";
import { colorEnabled, loadFlags } from "../../src/cli/explore.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { statusText } from "../../src/ui/components/explorer.js";
import { KnobBar } from "../../src/ui/components/knob-bar.js";
import { KNOBS, serversText } from "../../src/ui/knobs.js";
import { initialState, reduce } from "../../src/ui/state.js";
import { Detail } from "../../src/ui/components/detail.js";
import { ExecuteView } from "../../src/ui/components/panels.js";
import { PlanList } from "../../src/ui/components/plan-list.js";
import { ColorContext } from "../../src/ui/components/styled.js";
import { readdirSync } from "node:fs";
import { listRows, ready, startExplorer, tick, type Started } from "./helpers.js";

// eslint-disable-next-line no-control-regex
const SGR_COLOUR = /\x1b\[(?:\d+;)*(?:3\d|4\d|9\d|10\d)(?:;\d+)*m/;

let ui: Started | undefined;
afterEach(() => ui?.unmount());

const big = loadFlags({ model: "llama3-70b", gpus: 64 }).context;
const est = (input: Parameters<typeof resolvePlan>[2]) => estimate(big.model, big.shape, resolvePlan(big.model, big.shape, input));

describe("components", () => {
  it("the plan list marks the selection, marked plans and plans that do not fit", () => {
    const plans = [est({ tp: 8, pp: 4 }), est({ tp: 8, pp: 2 }), est({ tp: 1, pp: 1 })];
    const { lastFrame } = render(<ColorContext.Provider value={false}><PlanList plans={plans} selected={1} marked={(e) => e === plans[0]} rows={5} columns={80} empty="none" /></ColorContext.Provider>);
    const rows = listRows(lastFrame()!);
    expect(rows.map((r) => [r.selected, r.marked])).toEqual([[false, true], [true, false], [false, false]]);
    expect(lastFrame()!.split("\n")[3]).toMatch(/!/); // 1 GPU per replica for a 70B model does not fit
  });

  it("the knob bar shows pinned knobs with * and the focused one in brackets", () => {
    const knobs = { model: big.model, cluster: "dgx-h100", gpus: 64, shape: big.shape, modelNames: [], clusterNames: [], seqLen: 8192, globalBatch: 512 };
    const { lastFrame } = render(<ColorContext.Provider value={false}><KnobBar flags={{ tp: 8 }} knobs={knobs} selected={est({ tp: 8, pp: 4 }).plan} focus={6} title={false} /></ColorContext.Provider>);
    const [context, plan] = lastFrame()!.split("\n");
    expect(context).toContain("model llama3-70b");
    expect(context).toContain("gpus 64");
    expect(plan).toContain(" tp 8* ");
    expect(plan).toContain("[pp 4]");
    expect(context).not.toContain(" gpu ");
    // --gpu swapped the cluster's GPU: the bar says which, where the cluster alone would name its own
    const swapped = render(<ColorContext.Provider value={false}><KnobBar flags={{ gpu: "a100-sxm-40gb" }} knobs={knobs} selected={undefined} focus={6} title={false} gpu="a100-sxm-40gb" /></ColorContext.Provider>);
    expect(swapped.lastFrame()!.split("\n")[0]).toMatch(/cluster dgx-h100 .* gpu a100-sxm-40gb/);
    // --ps pinned: the servers are part of every plan listed, so the context line names them
    for (const [flags, shown] of [[{ ps: 4 }, "ps 4 sync"], [{ ps: 2, async: true }, "ps 2 async/1"], [{ ps: 2, async: true, staleness: 3 }, "ps 2 async/3"]] as const) {
      const bar = render(<ColorContext.Provider value={false}><KnobBar flags={flags} knobs={knobs} selected={undefined} focus={6} title={false} servers={serversText(flags)} /></ColorContext.Provider>);
      expect(bar.lastFrame()!.split("\n")[0]).toContain(shown);
    }
    expect(serversText({ tp: 2 })).toBeUndefined();
  });
});

describe("at 80 columns", () => {
  it("the page indicator stays on the last page", () => {
    const plans = [4, 8, 16, 32, 64].flatMap((tp) => [est({ tp: Math.min(tp, 8), pp: 4, zero: 1 }), est({ tp: 8, pp: 2, cp: 2, recompute: "full" })]);
    const frame = (selected: number) => render(<ColorContext.Provider value={false}><PlanList plans={plans} selected={selected} marked={() => false} rows={5} columns={80} empty="none" /></ColorContext.Provider>).lastFrame()!;
    expect(frame(0).split("\n")[0]).toMatch(/ 1-5\/10$/);
    expect(frame(9).split("\n")[0]).toMatch(/ 6-10\/10$/);
    for (const l of frame(9).split("\n")) expect(l.length).toBeLessThanOrEqual(80);
  });

  it("the status line shows the simulator's timing first, where a cut line keeps it", () => {
    const { context, pinned } = loadFlags({ model: "llama3-70b", gpus: 64 });
    const result = { searched: 12_148, feasible: 3_807, bounded: 5_269, plans: [est({ tp: 8, pp: 4 })], closest: [], seconds: 5.65, timelines: [] };
    const s = { ...initialState({}, context, pinned), phase: "ready" as const, result };
    const text = statusText(s);
    expect(text.slice(0, 78 - " tp pinned at 8 |".length)).toContain("ranked by the simulator in 5.65 s");
  });

  it("the knob line fits with ep and vpp shown, dropping the second space between knobs where it must", () => {
    const mixtral = loadFlags({ model: "mixtral-8x7b", gpus: 32 }).context;
    const plan = resolvePlan(mixtral.model, mixtral.shape, { tp: 2, pp: 4, cp: 4, ep: 2, schedule: "interleaved", virtualStages: 8, recompute: "selective" });
    const knobs = { model: mixtral.model, cluster: "dgx-h100", gpus: 32, shape: mixtral.shape, modelNames: [], clusterNames: [], seqLen: 32768, globalBatch: 128 };
    const vpp = KNOBS.findIndex((k) => k.flag === "vpp");
    const flags = { tp: 2, pp: 4, cp: 4, ep: 2, vpp: 8 };
    const line = render(<ColorContext.Provider value={false}><KnobBar flags={flags} knobs={knobs} selected={plan} focus={vpp} title={false} columns={80} /></ColorContext.Provider>).lastFrame()!.split("\n")[1]!;
    expect(line.length).toBeLessThanOrEqual(80);
    expect(line).toMatch(/^ tp 2\* pp 4\* dp 1 cp 4\* ep 2\* mb \d+ sched int \[vpp 8\*\] ZeRO \d rc sel SP on ?$/);
  });
});

describe("the screen says everything it has room for", () => {
  it("an error wraps over the empty list, naming plan fields as their flags (80x24)", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4, tp: 1, sp: true }, { size: { columns: 80, rows: 24 } });
    const f = await ui.waitFor((x) => x.includes("no plan:"), "the error");
    const text = f.split("\n").map((l) => l.trim()).join(" ");
    expect(text).toContain("no plan: --sp (sequenceParallel) = true is not valid (sequence parallel shards activations over the tp group, and tp is 1); valid: false (or left out) with tp 1 (u frees every pin)");
    for (const l of f.split("\n")) expect(l.length).toBeLessThanOrEqual(80);
  });

  it("the context line keeps the focused knob whole at 80 columns, cutting other values first", () => {
    const { context } = loadFlags({ model: "mixtral-8x7b", gpus: 64, cluster: "dgx-h100" });
    const knobs = { model: context.model, cluster: "dgx-h100", gpus: 64, shape: context.shape, modelNames: [], clusterNames: [], seqLen: 32768, globalBatch: 1024 };
    const gpu = "a100-sxm-40gb";
    for (const flag of ["model", "cluster", "global-batch"]) {
      const focus = KNOBS.findIndex((k) => k.flag === flag);
      const line = render(<ColorContext.Provider value={false}><KnobBar flags={{ seq: 32768, "global-batch": 1024 }} knobs={knobs} selected={undefined} focus={focus} title={false} columns={80} calibrated gpu={gpu} /></ColorContext.Provider>).lastFrame()!.split("\n")[0]!;
      expect(line.length).toBeLessThanOrEqual(80);
      expect(line).toContain({ model: "[model mixtral-8x7b]", cluster: "[cluster dgx-h100]", "global-batch": "[batch 1024]" }[flag]);
      expect(line).toContain(`gpu ${gpu}`);
    }
  });

  it("the memory total keeps its OVER amount", () => {
    const over = est({ tp: 1, pp: 1 });
    expect(over.memory.fits).toBe(false);
    const amount = ((over.memory.peakBytesPerGpu - over.memory.capacityBytes) / 2 ** 30).toFixed(1);
    for (const columns of [80, 160]) {
      const f = render(<ColorContext.Provider value={false}><Box width={columns} flexDirection="column"><Detail estimate={over} timeline={undefined} noTimeline="not simulated" shape={big.shape} columns={columns} lines={6} window="start" color={false} why={[]} /></Box></ColorContext.Provider>).lastFrame()!;
      const memory = f.split("\n").find((l) => l.startsWith("memory ["))!;
      expect(memory.length).toBeLessThanOrEqual(columns);
      expect(memory).toMatch(new RegExp(`OVER by ${amount} GiB$`));
    }
  });

  it("a list kept while a re-plan runs is marked as the previous one, and the status line says what is ranked", () => {
    const plans = [est({ tp: 8, pp: 4 }), est({ tp: 8, pp: 2 })];
    const f = render(<ColorContext.Provider value={false}><PlanList plans={plans} selected={0} marked={() => false} rows={5} columns={80} empty="none" stale /></ColorContext.Provider>).lastFrame()!;
    expect(f.split("\n")[0]).toMatch(/ \(old list\)$/);
    const { context, pinned } = loadFlags({ model: "llama3-70b", gpus: 64 });
    const result = { searched: 2, feasible: 2, bounded: 0, plans, closest: [], seconds: 1, timelines: [] };
    const shown = { ...initialState({}, context, pinned), phase: "ready" as const, result };
    const s = reduce(shown, { type: "flags", flags: { gpus: 128 }, context, pinned, message: "gpus 128" });
    expect(statusText(s)).toBe("ranking for gpus 128...: the list shown is the previous one");
  });
});

describe("the x view", () => {
  it("wraps a failure and the notes to the terminal's width instead of cutting their ends off", () => {
    const message = 'execution failed: recompute = "full" is not valid (the executor keeps every activation (recomputation is not executed yet)); valid: none';
    const failed = render(<ColorContext.Provider value={false}><ExecuteView run={{ title: "t", state: "failed", message }} columns={60} /></ColorContext.Provider>);
    const lines = failed.lastFrame()!.split("\n").slice(1);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(60);
    expect(lines.join(" ")).toBe(message);
    const note = "predicted on the profile in meshplan-profile.json, measured 32 min ago (meshplan calibrate measures it again)";
    const table = { title: "t", rows: [{ quantity: "step time", predicted: "1 ms", measured: "1 ms" }], notes: [note] };
    const done = render(<ColorContext.Provider value={false}><ExecuteView run={{ title: "t", state: "done", table }} columns={60} /></ColorContext.Provider>);
    expect(done.lastFrame()!.split("\n").slice(4).join(" ")).toBe(note);
  });

  it("says a run the user stopped was stopped, not that it failed", () => {
    const f = render(<ColorContext.Provider value={false}><ExecuteView run={{ title: "t", state: "stopped" }} columns={60} /></ColorContext.Provider>).lastFrame()!;
    expect(f).toContain("(Esc: back)");
    expect(f).toContain("stopped before its end");
    expect(f).not.toMatch(/fail/);
  });

  it("shows the progress label whole, wrapped below the bar", () => {
    const label = "no device profile (meshplan-profile.json); calibrating this machine first (about a minute; once a session): training steps of 4 small GPTs, round 1 of 3";
    const f = render(<ColorContext.Provider value={false}><ExecuteView run={{ title: "t", state: "running", fraction: 0.25, label }} columns={80} /></ColorContext.Provider>).lastFrame()!;
    const lines = f.split("\n");
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(lines[1]).toMatch(/^\[#+\.+\] 25%$/);
    expect(lines.slice(2).join(" ")).toBe(label);
  });
});

describe("the screen", () => {
  it("says the terminal is too small below 80x24", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 }, { size: { columns: 79, rows: 30 } });
    expect(ui.frame()).toContain("terminal too small: 79x30");
    expect(ui.frame()).toContain("80x24");
    // keys other than q do nothing there: s used to write a plan file unseen
    await tick(500);
    await ui.press("s");
    await tick(100);
    expect(readdirSync(ui.dir)).toEqual([]);
  });

  it("fits 80x24, eliding pipeline stages that do not fit", async () => {
    ui = await startExplorer({ model: "llama3-8b", gpus: 8, pp: 8 }, { size: { columns: 80, rows: 24 } });
    const f = await ui.waitFor(ready, "the ranked list");
    const lines = f.split("\n");
    expect(lines.length).toBeLessThanOrEqual(23);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(f).toMatch(/memory \[/);
    expect(f).toMatch(/time +\[/);
    expect(f).toContain("sent per GPU per step");
    expect(f).toMatch(/\.\.\. \d+ more \.\.\./); // 8 stages in fewer rows
    expect(f).toContain("q quit");
  });

  it("uses the room of a larger terminal: more columns and rows", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 }, { size: { columns: 120, rows: 40 } });
    const f = await ui.waitFor(ready, "the ranked list");
    expect(f).toContain("meshplan explore");
    expect(f).toContain("tokens/s");
    expect(listRows(f).length).toBeGreaterThan(5); // 80x24 shows 5
    expect(f).not.toMatch(/ 1-\d+\/\d+/); // every plan listed: no scrolling
    expect(f).toContain("Why the first plan wins");
  });

  it("draws no colour with NO_COLOR, and colours the timeline otherwise", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 }, { color: false });
    expect(await ui.waitFor(ready, "the list")).not.toMatch(SGR_COLOUR);
    ui.unmount();
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 }, { color: true });
    expect(await ui.waitFor(ready, "the list")).toMatch(SGR_COLOUR);
    expect(colorEnabled({ NO_COLOR: "1" }, { isTTY: true, hasColors: () => true })).toBe(false);
    expect(colorEnabled({}, { isTTY: true, hasColors: () => false })).toBe(false);
    expect(colorEnabled({}, { isTTY: true, hasColors: () => true })).toBe(true);
    expect(colorEnabled({ FORCE_COLOR: "1" }, { isTTY: false })).toBe(true);
  });
});
