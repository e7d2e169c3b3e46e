import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { builtinNames } from "../../src/cli/catalog.js";
import { loadFlags } from "../../src/cli/explore.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import type { Estimate } from "../../src/planner/cost/types.js";
import { searchPlans } from "../../src/planner/search/search.js";
import { simulate } from "../../src/simulator/simulate.js";
import { resolvePlan, type PlanInput } from "../../src/spec/plan.js";
import { runCommand, type ExplorerEnv } from "../../src/ui/commands.js";
import type { Command } from "../../src/ui/keys.js";
import { KNOBS, knobContext, type Flags } from "../../src/ui/knobs.js";
import { inlinePlanner } from "../../src/ui/planner.js";
import { initialState, recomputing, reduce, type ExplorerState } from "../../src/ui/state.js";

const dir = mkdtempSync(join(tmpdir(), "meshplan-choices-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Plans of the flags' model and cluster, as the list would hold them. */
function plansOf(flags: Flags, inputs: readonly PlanInput[]): Estimate[] {
  const { context } = loadFlags(flags);
  return inputs.map((i) => estimate(context.model, context.shape, resolvePlan(context.model, context.shape, i)));
}

/**
 * The commands against a state whose list holds `plans` (`phase`: the analytic list, or the simulator's with
 * timelines), the focus on `focus`; every action kept in the state, as the component does.
 */
function session(flags: Flags, o: { plans?: Estimate[]; phase?: "quick" | "refined"; focus?: string; env?: Partial<ExplorerEnv> } = {}) {
  const { context, pinned } = loadFlags(flags);
  let state: ExplorerState = initialState(flags, context, pinned);
  if (o.plans !== undefined) {
    const result = { searched: 1, feasible: o.plans.length, bounded: 0, plans: o.plans, closest: [], seconds: 0 };
    const phase = o.phase ?? "refined";
    state = reduce(state, { type: "update", update: { id: 1, phase, result: phase === "refined" ? { ...result, timelines: [] } : result } });
  }
  if (o.focus !== undefined) state = reduce(state, { type: "focus", index: KNOBS.findIndex((k) => k.flag === o.focus) });
  const env: ExplorerEnv = {
    planner: inlinePlanner(), top: 10, modelNames: builtinNames("model"), clusterNames: builtinNames("cluster"), saveDir: dir, load: loadFlags,
    execute: () => Promise.reject(new Error("not here")), runs: { stop: undefined }, ...o.env,
  };
  const press = (cmd: Command) => runCommand(cmd, state, knobContext(state.context, state.pinned, env), env, (a) => (state = reduce(state, a)), () => {});
  const say = (message: string | undefined) => (state = reduce(state, { type: "message", message }));
  const focus = (flag: string) => (state = reduce(state, { type: "focus", index: KNOBS.findIndex((k) => k.flag === flag) }));
  return { press, say, focus, state: () => state };
}

const plus: Command = { kind: "step", delta: 1 };
const minus: Command = { kind: "step", delta: -1 };

/** Whether `meshplan plan` lists anything (fitting or closest) for these flags: the list is not empty. */
function listsPlans(flags: Flags): boolean {
  const { context, pinned } = loadFlags(flags);
  try {
    const r = searchPlans(context.model, context.shape, pinned, { top: 1, shortlist: 1 });
    return r.plans.length + r.closest.length > 0;
  } catch {
    return false;
  }
}

describe("+ and - step only to values with a plan, given the other pins", () => {
  it("pp stops where tp 8 and vpp 16 leave no plan (80 layers, 64 GPUs), and says why", () => {
    const ui = session({ model: "llama3-70b", gpus: 64, tp: 8, vpp: 16, pp: 2 }, { focus: "pp" });
    ui.press(plus);
    expect(ui.state().flags.pp).toBe(4); // 4 x 16 = 64 chunks of 80 layers
    ui.press(plus); // pp 8: 128 chunks > 80 layers
    expect(ui.state().flags.pp).toBe(4);
    expect(ui.state().message).toBe("pp: no larger value has a plan with tp 8, vpp 16 pinned");
  });

  it("the micro-batch divides the per-replica batch of a pinned dp (mixtral: 128 sequences / dp 4)", () => {
    const ui = session({ model: "mixtral-8x7b", gpus: 64, dp: 4, "micro-batch": 16 }, { focus: "micro-batch" });
    ui.press(plus);
    expect(ui.state().flags["micro-batch"]).toBe(32);
    ui.press(plus);
    expect(ui.state().flags["micro-batch"]).toBe(32);
    expect(ui.state().message).toMatch(/^mb: no larger value has a plan with dp 4 pinned/);
  });

  it("every step of every knob leaves a list: the search has plans for the new flags", () => {
    const starts: Flags[] = [
      { model: "llama3-70b", gpus: 64, tp: 8, vpp: 16 },
      { model: "llama3-70b", gpus: 64, pp: 8, cp: 4 },
      { model: "mixtral-8x7b", gpus: 64, dp: 4, ep: 8 },
      { model: "tiny-gpt", gpus: 4, tp: 2, "micro-batch": 4 },
    ];
    for (const flags of starts) {
      for (const knob of KNOBS) {
        if (knob.flag === "model" || knob.flag === "cluster") continue; // these free the pins they cannot keep
        for (const step of [plus, minus]) {
          const ui = session(flags, { focus: knob.flag });
          ui.press(step);
          const after = ui.state().flags;
          if (after !== flags) expect(listsPlans(after), `${JSON.stringify(flags)}: ${knob.label} ${step === plus ? "+" : "-"} gave ${JSON.stringify(after)}`).toBe(true);
        }
      }
    }
  }, 60_000);

  it("the sequence steps below 128 (tiny-gpt's is 32)", () => {
    const ui = session({ model: "tiny-gpt", gpus: 4 }, { focus: "seq" });
    ui.press(minus);
    expect(ui.state().flags.seq).toBe(16);
  });

  it("sched on a plan without a pipeline steps both ways from 1f1b, or says pp 1 has one schedule", () => {
    const flat = plansOf({ model: "tiny-gpt", gpus: 4 }, [{ dp: 4 }]);
    const up = session({ model: "tiny-gpt", gpus: 4 }, { plans: flat, focus: "schedule" });
    up.press(plus);
    const down = session({ model: "tiny-gpt", gpus: 4 }, { plans: flat, focus: "schedule" });
    down.press(minus);
    // after and before 1f1b (interleaved, next in the list, has no plan: tiny-gpt's layers do not fill its chunks)
    expect([up.state().flags.schedule, down.state().flags.schedule]).toEqual(["zb-h1", "gpipe"]);
    const one = session({ model: "tiny-gpt", gpus: 4, pp: 1 }, { plans: flat, focus: "schedule" });
    one.press(plus);
    expect(one.state().flags.schedule).toBeUndefined();
    expect(one.state().message).toMatch(/^sched: pp 1 has one schedule/);
  });
});

describe("a new model frees the pins it cannot keep", () => {
  it("ep for a model without experts, and says so", () => {
    const ui = session({ model: "mixtral-8x7b", gpus: 64, ep: 8 }, { focus: "model", env: { modelNames: ["mixtral-8x7b", "llama3-70b"] } });
    ui.press(plus);
    expect(ui.state().flags).toEqual({ model: "llama3-70b", gpus: 64 });
    expect(ui.state().message).toBe("model llama3-70b; freed ep 8: only for models with experts (MoE)");
  });

  it("a tp the new model's heads do not split into; pins it can keep stay", () => {
    const ui = session({ model: "llama3-70b", gpus: 64, tp: 64, zero: 1 }, { focus: "model", env: { modelNames: ["llama3-70b", "llama3-8b"] } });
    ui.press(plus); // llama3-8b: 32 heads
    expect(ui.state().flags).toEqual({ model: "llama3-8b", gpus: 64, zero: 1 });
    expect(ui.state().message).toBe("model llama3-8b; freed tp 64: no plan of llama3-8b on 64 GPUs has it");
  });

  it("m frees an ep pinned from the command line on a model without experts", () => {
    const ui = session({ model: "llama3-70b", gpus: 64, ep: 8 });
    ui.press({ kind: "pin", knob: KNOBS.findIndex((k) => k.flag === "ep") });
    expect(ui.state().flags.ep).toBeUndefined();
    expect(ui.state().message).toMatch(/^ep free/);
  });
});

describe("while a re-plan runs, the list on screen is the previous one", () => {
  const flags = { model: "tiny-gpt", gpus: 4 };
  it("says what it is recomputed for, and keys that act on a plan say to wait", () => {
    const ui = session(flags, { plans: plansOf(flags, [{ dp: 4 }, { dp: 2, tp: 2 }]), focus: "gpus" });
    expect(recomputing(ui.state())).toBeUndefined();
    ui.press(plus);
    expect(recomputing(ui.state())).toBe("gpus 8");
    const tp = KNOBS.findIndex((k) => k.flag === "tp");
    // save, mark, run, pin at the plan's value, and + on a free plan knob (it starts from the plan's value)
    for (const cmd of [{ kind: "save" }, { kind: "mark" }, { kind: "execute" }, { kind: "pin", knob: tp }, plus] as Command[]) {
      ui.say(undefined);
      if (cmd === plus) ui.focus("tp");
      ui.press(cmd);
      expect(ui.state().message, cmd.kind).toBe("the list is being recomputed (gpus 8): wait for it");
    }
    expect(readdirSync(dir)).toEqual([]);
    expect(ui.state().marks).toEqual([]);
    expect(ui.state().view).toBe("main");
    expect(ui.state().flags).toEqual({ model: "tiny-gpt", gpus: 8 });
    ui.press({ kind: "move", delta: 1 }); // moving is harmless
    expect(ui.state().selected).toBe(1);
    const s = ui.state();
    const next = reduce(s, { type: "update", update: { id: s.request, phase: "quick", result: { searched: 1, feasible: 1, bounded: 0, plans: plansOf({ model: "tiny-gpt", gpus: 8 }, [{ dp: 8 }]), closest: [], seconds: 0 } } });
    expect(recomputing(next)).toBeUndefined();
    expect(next.message).toBe("gpus 8"); // "wait for it" is over: the change is said again
  });
});

describe("s on a plan not simulated yet", () => {
  it("says it is saving first, keeps taking keys, then saves the simulated plan", async () => {
    const flags = { model: "tiny-gpt", gpus: 4 };
    const plans = plansOf(flags, [{ dp: 4 }, { dp: 2, tp: 2 }]);
    let finish: () => void = () => {};
    const ui = session(flags, {
      plans, phase: "quick",
      env: { simulate: (model, shape, plan) => new Promise((resolve) => (finish = () => resolve(simulate(model, shape, plan).estimate))) },
    });
    ui.press({ kind: "save" });
    expect(ui.state().message).toBe("saving: simulating the plan first...");
    ui.press({ kind: "move", delta: 1 }); // a key while it simulates
    expect(ui.state().selected).toBe(1);
    finish();
    await new Promise((r) => setTimeout(r, 0));
    expect(ui.state().message).toMatch(/^saved /);
    const path = ui.state().message!.slice("saved ".length);
    expect(existsSync(path)).toBe(true);
    expect(path).toMatch(/-tp1-pp1-dp4-/); // the plan selected when s was pressed
  });
});
