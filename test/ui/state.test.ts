import { describe, expect, it } from "vitest";
import { contextKeepingLoader, loadFlags } from "../../src/cli/explore.js";
import { InputError } from "../../src/spec/errors.js";
import type { Estimate } from "../../src/planner/cost/types.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolvePlan, type PlanInput } from "../../src/spec/plan.js";
import type { PlanResult } from "../../src/ui/plan-job.js";
import { initialState, planIdentity, reduce, selectedEstimate, type ExplorerState } from "../../src/ui/state.js";

const { context, pinned } = loadFlags({ model: "tiny-gpt", gpus: 4 });
const est = (input: PlanInput): Estimate => estimate(context.model, context.shape, resolvePlan(context.model, context.shape, input));
const A = est({ dp: 4 }), B = est({ dp: 2, tp: 2 }), C = est({ pp: 2, dp: 2 }), D = est({ tp: 4 });
const result = (plans: Estimate[]): PlanResult => ({ searched: 10, feasible: plans.length, bounded: 0, plans, closest: [], seconds: 0.01 });
const start = (): ExplorerState => initialState({ model: "tiny-gpt", gpus: 4 }, context, pinned);
const update = (s: ExplorerState, phase: "quick" | "refined", plans: Estimate[], id = s.request) =>
  reduce(s, { type: "update", update: { id, phase, result: phase === "refined" ? { ...result(plans), timelines: [] } : result(plans) } });

describe("explorer state", () => {
  it("shows the quick list, then the simulator's, and ignores superseded requests", () => {
    let s = update(start(), "quick", [A, B, C]);
    expect(s.phase).toBe("refining");
    s = update(s, "refined", [C, A], s.request + 5);
    expect(s.phase).toBe("refining"); // not ours
    s = update(s, "refined", [C, A]);
    expect(s.phase).toBe("ready");
    expect(update(s, "quick", [D]).result!.plans).toEqual([C, A]); // a late quick list never replaces the final one
  });

  it("follows the selected plan across re-plans, else selects the best", () => {
    let s = update(start(), "refined", [A, B, C]);
    s = reduce(s, { type: "move", delta: 2 });
    expect(selectedEstimate(s)).toBe(C);
    s = reduce(s, { type: "flags", flags: { model: "tiny-gpt", gpus: 4, zero: 0 }, context, pinned: { zero: 0 } });
    expect(s.phase).toBe("searching");
    s = update(s, "quick", [D, A]); // C is not in the quick list: the best is shown, C remembered
    expect(s.selected).toBe(0);
    s = update(s, "refined", [B, C, A]);
    expect(selectedEstimate(s)).toBe(C);
    // the same knobs in another layout come first: the selection keeps the layout it had
    const other = { ...C, plan: { ...C.plan, layersPerStage: [2, 0] } };
    s = reduce(s, { type: "flags", flags: {}, context, pinned: {} });
    expect(selectedEstimate(update(s, "refined", [other, C]))).toBe(C);
    expect(selectedEstimate(update(s, "refined", [A, other]))).toBe(other); // else the same knobs
    s = update(s, "refined", [D, B]);
    expect(selectedEstimate(s)).toBe(D);
  });

  it("selects the simulator's best when nothing was chosen during the quick list", () => {
    let s = update(start(), "quick", [A, B]);
    expect(selectedEstimate(s)).toBe(A);
    s = update(s, "refined", [B, A]);
    expect(selectedEstimate(s)).toBe(B);
    s = update(reduce(update(start(), "quick", [A, B]), { type: "move", delta: 1 }), "refined", [A, B]); // chosen: followed
    expect(selectedEstimate(s)).toBe(B);
  });

  it("clamps moves to the list and keeps at most two marks", () => {
    let s = update(start(), "refined", [A, B, C]);
    s = reduce(s, { type: "move", delta: 100 });
    expect(s.selected).toBe(2);
    s = reduce(s, { type: "move", delta: -100 });
    expect(s.selected).toBe(0);
    for (const d of [0, 1, 1]) {
      s = reduce(s, { type: "move", delta: d });
      s = reduce(s, { type: "mark" });
    }
    expect(s.marks.map((m) => planIdentity(m.plan))).toEqual([B, C].map((e) => planIdentity(e.plan)));
    s = reduce(s, { type: "mark" }); // C again: unmarked
    expect(s.marks).toEqual([B]);
  });

  it("an error empties the list and says why", () => {
    const s = reduce(start(), { type: "update", update: { id: 1, phase: "error", message: "tp = 3 is not valid" } });
    expect(s.phase).toBe("error");
    expect(s.error).toContain("tp = 3");
    expect(selectedEstimate(s)).toBeUndefined();
  });
});

describe("the explorer's loader", () => {
  it("keeps the loaded model and cluster while only plan knobs change, and loads again when the context does", () => {
    const load = contextKeepingLoader();
    const first = load({ model: "tiny-gpt", gpus: 4 });
    const knob = load({ model: "tiny-gpt", gpus: 4, tp: 2, zero: 1 });
    expect(knob.context).toBe(first.context);
    expect(knob.pinned).toEqual({ tp: 2, zero: 1 });
    const other = load({ model: "tiny-gpt", gpus: 8, tp: 2 });
    expect(other.context).not.toBe(first.context);
    expect(other.context.shape.gpus).toBe(8);
    expect(load({ model: "llama3-8b", gpus: 8 }).context.model.name).toBe("llama3-8b");
    expect(load({ model: "tiny-gpt", gpus: 8, calibrated: false }).context.calibratedAt).toBeUndefined();
    // Bad knobs are still refused on every call, and a refused context leaves the kept one in place.
    const kept = load({ model: "tiny-gpt", gpus: 8, calibrated: false }).context;
    expect(() => load({ model: "tiny-gpt", gpus: 8, calibrated: false, zero: 7 })).toThrow(InputError);
    expect(() => load({ model: "llama9", gpus: 8 })).toThrow(InputError);
    expect(load({ model: "tiny-gpt", gpus: 8, calibrated: false, tp: 2 }).context).toBe(kept);
  });
});
