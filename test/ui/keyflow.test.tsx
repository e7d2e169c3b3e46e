import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { simulate } from "../../src/simulator/simulate.js";
import { column, KEY, listRows, ready, startExplorer, type Started } from "./helpers.js";

let ui: Started | undefined;
afterEach(() => ui?.unmount());

describe("explorer key flows (tiny-gpt on 4 GPUs, in-thread planner)", () => {
  it("lists plans, moves the selection with j/k and arrows, and pins tp with the selection following", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    const first = await ui.waitFor(ready, "the simulator's ranking");
    const rows = listRows(first);
    expect(rows.length).toBeGreaterThan(3);
    expect(rows[0]!.selected).toBe(true);
    await ui.press("j", "j", KEY.down, "k");
    expect(listRows(ui.frame()).findIndex((r) => r.selected)).toBe(2);
    // pin tp at the selected plan's value: every listed plan has it, and the same plan stays selected
    const tpCol = column(first, "tp");
    const chosen = listRows(ui.frame())[2]!.cells;
    await ui.press("t");
    expect(ui.frame()).toContain(`tp ${chosen[tpCol]}*`);
    const after = await ui.waitFor((f) => ready(f) && f.includes("tp pinned"), "the re-planned list");
    const pinned = listRows(after);
    expect(pinned.every((r) => r.cells[tpCol] === chosen[tpCol])).toBe(true);
    expect(pinned.find((r) => r.selected)!.cells.slice(1)).toEqual(chosen.slice(1));
    // t again frees it
    await ui.press("t");
    await ui.waitFor((f) => f.includes("tp free") && !f.includes(`tp ${chosen[tpCol]}*`), "tp freed");
  });

  it("changes the GPU count and the model with the knob cursor and + / -", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    await ui.waitFor(ready, "the first list");
    await ui.press(KEY.left, KEY.left, KEY.left, KEY.left); // from tp to gpus
    expect(ui.frame()).toContain("[gpus 4]");
    await ui.press("+");
    await ui.waitFor((f) => f.includes("[gpus 8]") && ready(f) && f.includes("gpus 8"), "8 GPUs");
    const f = ui.frame();
    const dp = column(f, "dp"), tp = column(f, "tp"), pp = column(f, "pp"), cp = column(f, "cp");
    for (const r of listRows(f)) expect(Number(r.cells[dp]) * Number(r.cells[tp]) * Number(r.cells[pp]) * Number(r.cells[cp])).toBe(8);
    await ui.press(KEY.left, "+"); // model -> the next built-in one
    await ui.waitFor((f2) => !f2.includes("model tiny-gpt"), "another model");
  });

  it("marks two plans and compares them side by side", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    await ui.waitFor(ready, "the list");
    await ui.press("v");
    expect(ui.frame()).toContain("mark two plans");
    await ui.press(" ", "j", " ");
    expect(listRows(ui.frame()).filter((r) => r.marked)).toHaveLength(2);
    await ui.press("v");
    const f = ui.frame();
    expect(f).toMatch(/compare +A \(marked first\) +B/);
    for (const label of ["step", "tokens/s", "memory/GPU", "activations", "bubble"]) expect(f).toContain(label);
    await ui.press(KEY.escape);
    expect(listRows(ui.frame()).length).toBeGreaterThan(0);
  });

  it("s saves the selected plan atomically; the file re-simulates to the same numbers", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    await ui.waitFor(ready, "the list");
    await ui.press("j", "s");
    await ui.waitFor((f) => f.includes("saved"), "the saved message");
    const files = readdirSync(ui.dir);
    expect(files).toHaveLength(1); // no temporary file left behind
    const saved = JSON.parse(readFileSync(join(ui.dir, files[0]!), "utf8"));
    // The context the explorer's flags give (the calibrated cluster, as plan and simulate use by default).
    const { context } = loadFlags({ model: saved.model, gpus: saved.cluster.gpus, cluster: saved.cluster.name });
    const again = simulate(context.model, context.shape, saved.plan).estimate;
    expect(JSON.parse(JSON.stringify(again))).toEqual(saved);
    const selectedTp = listRows(ui.frame()).find((r) => r.selected)!.cells[column(ui.frame(), "tp")];
    expect(saved.plan.tp).toBe(Number(selectedTp));
  });

  it("x says the executor is not available yet, and runs it through the seam when there is one", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    await ui.waitFor(ready, "the list");
    await ui.press("x");
    await ui.waitFor((f) => f.includes("executor not available yet"), "the unavailable message");
    await ui.press(KEY.escape);
    ui.unmount();
    let finish: () => void = () => {};
    let runs = 0;
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 }, {
      env: {
        execute: (_m, _s, plan, onProgress) => new Promise((resolve) => {
          runs++;
          onProgress(0.5, "step 3/5");
          finish = () => resolve({ title: `tp ${plan.tp}`, rows: [{ quantity: "step time", predicted: "1.0 ms", measured: "1.2 ms" }] });
        }),
      },
    });
    await ui.waitFor(ready, "the list");
    await ui.press("x");
    await ui.waitFor((f) => f.includes("50% step 3/5"), "the progress bar");
    // a second x while the first runs would share the cores with it and time both wrong: refused
    await ui.press("x");
    await ui.waitFor((f) => f.includes("a run is in progress"), "the refusal");
    expect(runs).toBe(1);
    finish();
    const f = await ui.waitFor((f2) => f2.includes("step time"), "the table");
    expect(f).toMatch(/step time +1\.0 ms +1\.2 ms/);
  });

  it("x refuses a model too large to run locally", async () => {
    ui = await startExplorer({ model: "llama3-8b", gpus: 8, tp: 8 });
    await ui.waitFor((f) => listRows(f).length > 0, "a list");
    await ui.press("x");
    await ui.waitFor((f) => f.includes("x runs models up to 50 M"), "the size limit");
  });

  it("a pinned value no plan has says so, and u frees every knob", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4, tp: 4, pp: 4 });
    await ui.waitFor((f) => f.includes("no plan:"), "the error");
    await ui.press("u");
    await ui.waitFor(ready, "a list again");
  });

  it("? shows every key and Esc goes back; w changes the timeline window", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    await ui.waitFor(ready, "the list");
    await ui.press("?");
    for (const k of ["j/k", "Enter", "space", "save", "run the selected plan", "quit"]) expect(ui.frame()).toContain(k);
    await ui.press(KEY.escape);
    expect(ui.frame()).toContain("Timeline");
    await ui.press("w");
    expect(ui.frame()).toMatch(/Timeline, (whole step|end of the step)/);
  });
});

describe("typed ahead", () => {
  it("keys that arrive together (Ink passes them as one string) each count", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    await ui.waitFor(ready, "the list");
    await ui.press("jjj");
    expect(listRows(ui.frame()).findIndex((r) => r.selected)).toBe(3);
  });
});
