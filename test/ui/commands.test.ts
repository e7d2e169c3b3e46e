import { describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { runCommand, running, RUN_IN_PROGRESS, type ExplorerEnv } from "../../src/ui/commands.js";
import { ExecuteError, type ExecuteFn, type Execution } from "../../src/ui/executor.js";
import type { Command } from "../../src/ui/keys.js";
import { knobContext } from "../../src/ui/knobs.js";
import { inlinePlanner } from "../../src/ui/planner.js";
import { initialState, reduce, type ExplorerState } from "../../src/ui/state.js";

const flags = { model: "tiny-gpt", gpus: 4 };
const { context, pinned } = loadFlags(flags);
const plan = estimate(context.model, context.shape, resolvePlan(context.model, context.shape, { dp: 4 }));
const knobs = knobContext(context, pinned, { modelNames: [], clusterNames: [] });

/** The commands against a ready list of one plan, with `execute` as the executor; every action and run state kept. */
function session(execute: ExecuteFn) {
  let state: ExplorerState = reduce(initialState(flags, context, pinned), {
    type: "update",
    update: { id: 1, phase: "refined", result: { searched: 1, feasible: 1, bounded: 0, plans: [plan], closest: [], seconds: 0, timelines: [] } },
  });
  const runs: Execution[] = [];
  const env: ExplorerEnv = {
    planner: inlinePlanner(), top: 10, modelNames: [], clusterNames: [], saveDir: ".", load: loadFlags, execute, runs: { stop: undefined },
  };
  const press = (cmd: Command) => runCommand(cmd, state, knobs, env, (a) => (state = reduce(state, a)), (r) => runs.push(r));
  return { env, runs, press, state: () => state };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("a run of x", () => {
  it("Esc stops it: it ends stopped, not failed, even when the executor then rejects as its signal asks", async () => {
    let signal: AbortSignal | undefined;
    let rejected = false;
    const ui = session((_m, _s, _p, _progress, s) => new Promise((_resolve, reject) => {
      signal = s;
      s.addEventListener("abort", () => {
        rejected = true;
        reject(new ExecuteError("stopped", "stopped before its end"));
      });
    }));
    ui.press({ kind: "execute" });
    expect(running(ui.env.runs)).toBe(true);
    expect(ui.state().view).toBe("execute");
    ui.press({ kind: "mark" }); // other keys wait for the run
    expect(ui.state().message).toBe(RUN_IN_PROGRESS);
    ui.press({ kind: "back" });
    expect(signal?.aborted).toBe(true);
    expect(running(ui.env.runs)).toBe(false);
    expect(ui.state().view).toBe("main"); // back to the list, as Esc goes back from the x view
    await settle();
    expect(rejected).toBe(true);
    expect(ui.runs.map((r) => r.state)).toEqual(["running", "stopped"]);
    expect(ui.state().message).toMatch(/^x: run stopped/);
  });

  it("a run that fails on its own ends failed, with the executor's reason", async () => {
    const ui = session(() => Promise.reject(new ExecuteError("failed", "execution failed: rank 2 died")));
    ui.press({ kind: "execute" });
    await settle();
    expect(running(ui.env.runs)).toBe(false);
    expect(ui.runs.at(-1)).toEqual({ title: expect.any(String), state: "failed", message: "execution failed: rank 2 died" });
    expect(ui.state().message).toBe("x: the run failed (why above)");
    expect(ui.state().view).toBe("execute"); // the reason stays on screen until Esc
    ui.press({ kind: "back" });
    expect(ui.state().view).toBe("main");
  });
});
