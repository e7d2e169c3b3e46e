import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { simulate } from "../../src/simulator/simulate.js";
import { ExecuteError } from "../../src/ui/executor.js";
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
    await ui.waitFor((f) => f.includes("executor not available yet") && f.includes("x: not run: the executor is not available"), "the unavailable message");
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
    await ui.waitFor((f) => f.includes("50%") && f.includes("step 3/5"), "the progress bar");
    // a second x while the first runs would share the cores with it and time both wrong: refused
    await ui.press("x");
    await ui.waitFor((f) => f.includes("a run is in progress"), "the refusal");
    expect(runs).toBe(1);
    finish();
    const f = await ui.waitFor((f2) => f2.includes("step time"), "the table");
    expect(f).toMatch(/step time +1\.0 ms +1\.2 ms/);
    expect(f).toContain("x: done");
  });

  it("Esc during a run of x stops it for real and says so; other keys wait for it", async () => {
    let signal: AbortSignal | undefined;
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 }, {
      env: {
        execute: (_m, _s, _p, onProgress, s) => new Promise((_resolve, reject) => {
          signal = s;
          onProgress(0, "no device profile (meshplan-profile.json); calibrating this machine first: matrix multiplies");
          s.addEventListener("abort", () => reject(new ExecuteError("stopped", "stopped")));
        }),
      },
    });
    await ui.waitFor(ready, "the list");
    await ui.press("x");
    await ui.waitFor((f) => f.includes("matrix multiplies") && f.includes("(Esc stops the"), "the run's progress, whole");
    await ui.press("t"); // a re-plan would share the cores with the run
    await ui.waitFor((f) => f.includes("a run is in progress: Esc stops it"), "the run holding other keys");
    expect(ui.frame()).not.toContain("tp pinned");
    await ui.press(KEY.escape);
    const f = await ui.waitFor((f2) => f2.includes("x: run stopped"), "the stop said");
    expect(signal?.aborted).toBe(true);
    expect(listRows(f).length).toBeGreaterThan(0); // back to the list
    await ui.press("t"); // keys act again
    await ui.waitFor((f2) => f2.includes("tp pinned"), "tp pinned after the run");
  });

  it("x refuses a model too large to run locally, and the status line says so", async () => {
    ui = await startExplorer({ model: "llama3-8b", gpus: 8, tp: 8 });
    await ui.waitFor((f) => listRows(f).length > 0, "a list");
    await ui.press("a"); // an older message
    await ui.waitFor((f) => f.includes("a: no such key"), "the unbound key said");
    await ui.press("x");
    const f = await ui.waitFor((f2) => f2.includes("x runs models up to 50 M"), "the size limit");
    expect(f).toContain("x: not run: too large");
    expect(f).not.toContain("no such key");
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

describe("expert parallelism and virtual stages", () => {
  it("mixtral: an ep column tells apart plans that differ only in ep, and m pins it", async () => {
    ui = await startExplorer({ model: "mixtral-8x7b", gpus: 64, tp: 2, pp: 4 }, { size: { columns: 80, rows: 24 } });
    const first = await ui.waitFor(ready, "the simulator's ranking", 60_000);
    const ep = column(first, "ep");
    expect(ep).toBe(5); // # dp tp pp cp ep
    expect(first).toMatch(/ ep \d+ /); // in the knob line
    const rows = listRows(first);
    const eps = new Set(rows.map((r) => r.cells[ep]));
    expect(eps.size).toBeGreaterThan(1);
    const chosen = rows.find((r) => r.cells[ep] !== rows[0]!.cells[ep])!;
    while (!listRows(ui.frame()).find((r) => r.selected)!.cells.every((c, i) => c === chosen.cells[i])) await ui.press("j");
    await ui.press("m");
    const pinned = await ui.waitFor((f) => ready(f) && f.includes(`ep pinned at ${chosen.cells[ep]}`), "ep pinned", 60_000);
    expect(pinned).toContain(`ep ${chosen.cells[ep]}*`);
    expect(listRows(pinned).every((r) => r.cells[ep] === chosen.cells[ep])).toBe(true);
  }, 120_000);

  it("a dense model has no ep knob; m says so", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4 });
    const f = await ui.waitFor(ready, "the list");
    expect(column(f, "ep")).toBe(-1);
    expect(f).not.toMatch(/ ep \d/);
    await ui.press("m");
    await ui.waitFor((f2) => f2.includes("ep applies only to models with experts"), "the refusal");
  });

  it("with the schedule pinned to interleaved, i pins the virtual stages and + and - step them", async () => {
    ui = await startExplorer({ model: "llama3-8b", gpus: 8, pp: 4, schedule: "interleaved" });
    const first = await ui.waitFor(ready, "the interleaved list", 60_000);
    const sched = column(first, "sched");
    const v = Number(listRows(first)[0]!.cells[sched]!.replace("int/", ""));
    await ui.press("i");
    await ui.waitFor((f) => ready(f) && f.includes(`vpp pinned at ${v}`) && f.includes(`[vpp ${v}*]`), "vpp pinned", 60_000);
    await ui.press(v > 2 ? "-" : "+");
    const next = await ui.waitFor((f) => ready(f) && /vpp \d+ \(pinned\)/.test(f), "the next vpp", 60_000);
    const w = Number(/vpp (\d+) \(pinned\)/.exec(next)![1]);
    expect(w).not.toBe(v);
    expect(listRows(next).every((r) => r.cells[sched] === `int/${w}`)).toBe(true);
  }, 120_000);

  it("a plan without a pipeline shows '-' for its schedule in the knob line, as in its row", async () => {
    ui = await startExplorer({ model: "tiny-gpt", gpus: 4, pp: 1 });
    const f = await ui.waitFor(ready, "the list");
    expect(listRows(f)[0]!.cells[column(f, "sched")]).toBe("-");
    expect(f).toMatch(/ sched - /);
    expect(f).toMatch(/ vpp - /);
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
