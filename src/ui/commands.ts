import { relative, isAbsolute } from "node:path";
import type { Context } from "../cli/context.js";
import { describePlan } from "../planner/explain/explain.js";
import { simulate } from "../simulator/simulate.js";
import { InputError } from "../spec/errors.js";
import type { PlanInput } from "../spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import type { Execution, PredictedVsMeasured, Progress } from "./executor.js";
import type { Command } from "./keys.js";
import { freeAll, isPinned, KNOBS, knobOptions, knobValue, showValue, stepValue, withFlag, type Flags, type KnobContext } from "./knobs.js";
import type { Planner } from "./planner.js";
import { savePlan } from "./save.js";
import { selectedEstimate, type Action, type ExplorerState } from "./state.js";

/** What the explorer reaches outside itself: the planner, files, the executor. Injected, so tests can. */
export interface ExplorerEnv {
  readonly planner: Planner;
  /** Plans in the list (as `meshplan plan --top`). */
  readonly top: number;
  readonly modelNames: readonly string[];
  readonly clusterNames: readonly string[];
  /** Where `s` writes. */
  readonly saveDir: string;
  /** Loads the model and cluster the flags name, and the knobs they pin; throws InputError. */
  readonly load: (flags: Flags) => { readonly context: Context; readonly pinned: PlanInput };
  readonly execute: (model: ModelSpec, shape: ClusterShape, plan: Plan, onProgress: Progress) => Promise<PredictedVsMeasured>;
  /** Runs of `x` still going: one at a time (two would share the cores and time each other). */
  readonly runs: { active: number };
}

type Apply = (a: Action) => void;

/** New flags: loaded and validated the way the CLI does, then re-planned; bad ones only say why. */
function setFlags(env: ExplorerEnv, apply: Apply, flags: Flags, message?: string): void {
  try {
    const { context, pinned } = env.load(flags);
    apply({ type: "flags", flags, context, pinned, ...(message === undefined ? {} : { message }) });
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    apply({ type: "message", message: e.message });
  }
}

function pin(s: ExplorerState, env: ExplorerEnv, apply: Apply, index: number): void {
  const knob = KNOBS[index]!;
  apply({ type: "focus", index });
  if (knob.kind === "context") {
    apply({ type: "message", message: `+ and - change ${knob.label}` });
    return;
  }
  if (isPinned(s.flags, knob)) {
    setFlags(env, apply, withFlag(s.flags, knob.flag, undefined), `${knob.label} free`);
    return;
  }
  const plan = selectedEstimate(s)?.plan;
  const value = plan === undefined ? undefined : knob.ofPlan?.(plan);
  if (value === undefined) {
    apply({ type: "message", message: plan === undefined ? "no plan selected to pin from" : `${knob.label} applies only with tp > 1` });
    return;
  }
  setFlags(env, apply, withFlag(s.flags, knob.flag, value), `${knob.label} pinned at ${showValue(value)}`);
}

function step(s: ExplorerState, knobs: KnobContext, env: ExplorerEnv, apply: Apply, delta: 1 | -1): void {
  const knob = KNOBS[s.focus]!;
  const current = knobValue(knob, s.flags, knobs, selectedEstimate(s)?.plan);
  const next = stepValue(knobOptions(knob, knobs), current, delta);
  if (next === undefined || next === current) {
    apply({ type: "message", message: `${knob.label}: no ${delta > 0 ? "larger" : "smaller"} value` });
    return;
  }
  setFlags(env, apply, withFlag(s.flags, knob.flag, next), `${knob.label} ${showValue(next)}${knob.kind === "plan" ? " (pinned)" : ""}`);
}

function save(s: ExplorerState, env: ExplorerEnv, apply: Apply): void {
  const e = selectedEstimate(s);
  if (e === undefined) {
    apply({ type: "message", message: "nothing to save yet" });
    return;
  }
  try {
    // The list's plans are simulated once the ranking is final; before that (or for a plan that does
    // not fit) simulate it now, so the file always holds what `meshplan simulate` gives.
    const simulated = s.result?.timelines !== undefined && s.result.plans.includes(e) ? e : simulate(s.resultContext.model, s.resultContext.shape, e.plan).estimate;
    const path = savePlan(env.saveDir, simulated);
    const rel = relative(process.cwd(), path);
    apply({ type: "message", message: `saved ${rel.startsWith("..") || isAbsolute(rel) ? path : rel}` });
  } catch (err) {
    apply({ type: "message", message: `could not save: ${err instanceof Error ? err.message : String(err)}` });
  }
}

function execute(s: ExplorerState, env: ExplorerEnv, apply: Apply, setRun: (r: Execution) => void): void {
  const e = selectedEstimate(s);
  if (e === undefined) {
    apply({ type: "message", message: "no plan selected" });
    return;
  }
  if (env.runs.active > 0) {
    apply({ type: "message", message: "a run is in progress: its table comes when it ends (q quits and stops it)" });
    return;
  }
  const title = `${e.model}: ${describePlan(e.plan)}`;
  setRun({ title, state: "running", fraction: 0, label: "starting" });
  if (s.view !== "execute") apply({ type: "view", view: "execute" });
  env.runs.active++;
  env.execute(s.resultContext.model, s.resultContext.shape, e.plan, (fraction, label) => setRun({ title, state: "running", fraction, label }))
    .then((table) => setRun({ title, state: "done", table }))
    .catch((err: unknown) => setRun({ title, state: "failed", message: err instanceof Error ? err.message : String(err) }))
    .finally(() => env.runs.active--);
}

/** Carries out one command against the latest state. */
export function runCommand(cmd: Command, s: ExplorerState, knobs: KnobContext, env: ExplorerEnv, apply: Apply, setRun: (r: Execution) => void): void {
  switch (cmd.kind) {
    case "move": return apply({ type: "move", delta: cmd.delta });
    case "focus": return apply({ type: "focus", index: s.focus + cmd.delta });
    case "step": return step(s, knobs, env, apply, cmd.delta);
    case "pin": return pin(s, env, apply, cmd.knob);
    case "freeAll": return setFlags(env, apply, freeAll(s.flags), "every knob free");
    case "mark": return apply({ type: "mark" });
    case "compare":
      if (s.marks.length < 2 && s.view !== "compare") return apply({ type: "message", message: "mark two plans with space first" });
      return apply({ type: "view", view: "compare" });
    case "save": return save(s, env, apply);
    case "execute": return execute(s, env, apply, setRun);
    case "window": return apply({ type: "window" });
    case "help": return apply({ type: "view", view: "help" });
    case "back": return apply({ type: "view", view: s.view }); // the same view again toggles back to the main one
    case "quit": return;
  }
}
