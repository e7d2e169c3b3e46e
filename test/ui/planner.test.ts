import { describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { searchPlans } from "../../src/planner/search/search.js";
import { simulate } from "../../src/simulator/simulate.js";
import { planJob, type PlanRequest, type PlanUpdate } from "../../src/ui/plan-job.js";
import { inlinePlanner } from "../../src/ui/planner.js";

function request(flags: Parameters<typeof loadFlags>[0], id = 1, top = 5): PlanRequest {
  const { context, pinned } = loadFlags(flags);
  return { id, model: context.model, shape: context.shape, pinned, top };
}

describe("the explorer's search job", () => {
  it("ends with exactly meshplan plan's ranking (the simulator's), with a timeline per plan", () => {
    for (const flags of [{ model: "tiny-gpt", gpus: 4 }, { model: "llama3-8b", gpus: 8, tp: 2 }]) {
      const req = request(flags);
      const updates = [...planJob(req)].filter((u): u is PlanUpdate => u !== undefined);
      expect(updates.map((u) => u.phase)).toEqual(["quick", "refined"]);
      const refined = updates[1]!;
      if (refined.phase === "error") throw new Error(refined.message);
      const cli = searchPlans(req.model, req.shape, req.pinned, { top: req.top, refine: (m, s, p) => simulate(m, s, p).estimate });
      expect(refined.result.plans).toEqual(cli.plans);
      expect(refined.result.timelines).toHaveLength(cli.plans.length);
      expect(refined.result.timelines![0]!.stepSeconds).toBeCloseTo(cli.plans[0]!.time.stepSeconds, 9);
    }
  });

  it("reports a pinned value that no plan has as one error", () => {
    const updates = [...planJob(request({ model: "tiny-gpt", gpus: 4, tp: 4, pp: 4 }))].filter((u) => u !== undefined);
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ phase: "error" });
  });
});

describe("the in-thread planner", () => {
  const collect = () => {
    const got: PlanUpdate[] = [];
    return { got, on: (u: PlanUpdate) => got.push(u) };
  };
  const settle = (got: PlanUpdate[], id: number) => new Promise<void>((resolve) => {
    const poll = () => (got.some((u) => u.id === id && u.phase !== "quick") ? resolve() : setTimeout(poll, 5));
    poll();
  });

  it("delivers only the newest request's updates", async () => {
    const planner = inlinePlanner();
    const { got, on } = collect();
    planner.request(request({ model: "tiny-gpt", gpus: 4 }, 1), on);
    planner.request(request({ model: "tiny-gpt", gpus: 4, tp: 2 }, 2), on);
    await settle(got, 2);
    expect(got.every((u) => u.id === 2)).toBe(true);
    planner.close();
  });

  it("answers a state it has seen from its cache at once", async () => {
    const planner = inlinePlanner();
    const { got, on } = collect();
    planner.request(request({ model: "tiny-gpt", gpus: 4 }, 1), on);
    await settle(got, 1);
    planner.request(request({ model: "tiny-gpt", gpus: 4 }, 2), on);
    await settle(got, 2);
    const second = got.filter((u) => u.id === 2);
    expect(second.map((u) => u.phase)).toEqual(["refined"]);
    planner.close();
  });
});
