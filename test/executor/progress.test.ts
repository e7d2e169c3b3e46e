import { afterEach, describe, expect, it, vi } from "vitest";
import { onTimer, PROGRESS_EVERY_MS } from "../../src/executor/index.js";
import { execute, type ProgressEvent } from "../../src/executor/execute.js";
import { progressReporter } from "../../src/cli/execute.js";
import { loadModel } from "../../src/cli/catalog.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

describe("the explorer's progress during a run (executor/index.ts onTimer)", () => {
  afterEach(() => vi.useRealTimers());

  it("passes on the latest value once per interval, not at each step's end, and what is left when stopped", () => {
    vi.useFakeTimers();
    const shown: [number, string][] = [];
    const t = onTimer((f, l) => shown.push([f, l]), PROGRESS_EVERY_MS);
    t.update(0.1, "step 1/27");
    t.update(0.2, "step 2/27");
    expect(shown).toEqual([]);
    vi.advanceTimersByTime(PROGRESS_EVERY_MS);
    expect(shown).toEqual([[0.2, "step 2/27"]]);
    // Nothing new: nothing redrawn.
    vi.advanceTimersByTime(3 * PROGRESS_EVERY_MS);
    expect(shown).toHaveLength(1);
    t.update(0.9, "step 25/27");
    t.stop();
    expect(shown).toEqual([[0.2, "step 2/27"], [0.9, "step 25/27"]]);
    // Stopped: no timer left behind.
    t.update(1, "step 27/27");
    vi.advanceTimersByTime(10 * PROGRESS_EVERY_MS);
    expect(shown).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("execute's progress lines (cli/execute.ts progressReporter)", () => {
  function reporter(ranks: number, steps: number) {
    const lines: string[] = [];
    let t = 0;
    const report = progressReporter({ out: () => {}, err: (l) => lines.push(l) }, ranks, steps, 0, 5000, () => t);
    return { lines, report, at: (ms: number) => (t = ms) };
  }

  it("inside a long step, the furthest-behind rank's passes every 5 s; a line per step all ranks finished", () => {
    const { lines, report, at } = reporter(2, 2);
    at(1000);
    report({ rank: 0, step: 0, phase: "passes", passes: { done: 90, of: 262_144 } });
    expect(lines).toEqual([]); // not 5 s yet since the reporter started
    at(5000);
    report({ rank: 1, step: 0, phase: "passes", passes: { done: 500, of: 262_144 } });
    expect(lines).toEqual(["execute [..............................] step 1/2: pass 90 of 262,144"]);
    at(6000);
    report({ rank: 0, step: 0, phase: "passes", passes: { done: 600, of: 262_144 } });
    expect(lines).toHaveLength(1);
    report({ rank: 0, step: 0, phase: "step" });
    report({ rank: 1, step: 0, phase: "step" });
    expect(lines[1]).toBe("execute [###############...............] step 1/2");
    at(11_000);
    report({ rank: 0, step: 1, phase: "passes", passes: { done: 131_072, of: 262_144 } });
    expect(lines[2]).toBe("execute [#######################.......] step 2/2: pass 131,072 of 262,144");
  });

  it("the one-rank reference: its pass reports and its long steps, none of its quick ones", () => {
    const { lines, report, at } = reporter(1, 3);
    at(100);
    report({ rank: 0, step: 0, phase: "reference step" });
    at(200);
    report({ rank: 0, step: 1, phase: "reference step" });
    expect(lines).toEqual([]);
    at(6000);
    report({ rank: 0, step: 2, phase: "reference passes", passes: { done: 10, of: 20 } });
    at(9000);
    report({ rank: 0, step: 2, phase: "reference step" });
    expect(lines).toEqual([
      "execute: the one-rank reference (the same steps on one rank, for the numerics): step 3/3, pass 10 of 20",
      "execute: the one-rank reference (the same steps on one rank, for the numerics): step 3/3 done",
    ]);
  });
});

describe("ranks report their passes inside a step that has run a second (run/rank.ts)", () => {
  it("a step of tiny-gpt at 384 sequences on one rank: pass counts of its 768 passes, the reference's too", async () => {
    const model = loadModel("tiny-gpt");
    // 128 sequences made a step of about 1.2 s in CI (2026-11-24): too close to the one second before the
    // first report, and it failed there; three times as many leave a clear margin.
    const plan = resolvePlan(model, shapeOf("dgx-h100", 1), { globalBatch: 384, flashAttention: false });
    const events: ProgressEvent[] = [];
    await execute({ model, plan, steps: 1, timeoutSeconds: 60, onProgress: (e) => events.push(e) });
    const passes = events.filter((e) => e.phase === "passes");
    // Some 200 passes a second here: about 3.5 s a step, so a few reports (more on a slower machine).
    expect(passes.length).toBeGreaterThan(0);
    for (const e of passes) {
      expect(e.passes!.of).toBe(768);
      expect(e.passes!.done).toBeGreaterThan(0);
      expect(e.passes!.done).toBeLessThanOrEqual(768);
    }
    expect(events.filter((e) => e.phase === "reference passes").length).toBeGreaterThan(0);
    expect(events.filter((e) => e.phase === "step" || e.phase === "reference step")).toHaveLength(2);
  }, 120_000);
});
