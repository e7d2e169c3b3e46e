import { afterEach, describe, expect, it, vi } from "vitest";
import { onTimer, PROGRESS_EVERY_MS } from "../../src/executor/index.js";

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
