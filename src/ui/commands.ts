import { relative, isAbsolute } from "node:path";
import type { Context } from "../cli/context.js";
import { describePlan } from "../planner/explain/explain.js";
import { simulate } from "../simulator/simulate.js";
import { InputError } from "../spec/errors.js";
import type { PlanInput } from "../spec/plan.js";
import { ExecuteError, type ExecuteFn, type Execution } from "./executor.js";
import type { Command } from "./keys.js";
import { freeAll, isPinned, knobApplies, KNOBS, knobOptions, knobValue, nextKnob, showValue, stepValue, withFlag, type Flags, type KnobContext } from "./knobs.js";
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
  readonly execute: ExecuteFn;
  /** The run of `x` in progress, if any: one at a time (two would share the cores and time each other). */
  readonly runs: Runs;
}

export interface Runs {
  /** Stops the run in progress (its threads end); undefined when none runs. */
  stop: (() => void) | undefined;
}

/** Whether a run of `x` is in progress: it holds a way to stop it until it ends. */
export function running(runs: Runs): boolean {
  return runs.stop !== undefined;
}

/** What every key but Esc and q says while `x` runs: other work would share the cores and skew its timings. */
export const RUN_IN_PROGRESS = "a run is in progress: Esc stops it, q quits";

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
  if (!knobApplies(knob, s.context.model)) {
    apply({ type: "message", message: `${knob.label} applies only to ${knob.onlyWith ?? "other models"}: ${s.context.model.name} has none` });
    return;
  }
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
    apply({ type: "message", message: plan === undefined ? "no plan selected to pin from" : `${knob.label} applies only with ${knob.onlyWith ?? "other plans"}: + and - pin a value` });
    return;
  }
  setFlags(env, apply, withFlag(s.flags, knob.flag, value), `${knob.label} pinned at ${showValue(value)}`);
}

function step(s: ExplorerState, knobs: KnobContext, env: ExplorerEnv, apply: Apply, delta: 1 | -1): void {
  const knob = KNOBS[s.focus]!;
  if (!knobApplies(knob, s.context.model)) {
    apply({ type: "message", message: `${knob.label} applies only to ${knob.onlyWith ?? "other models"}` });
    return;
  }
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

/** The status line's word for a run the user stopped (Esc, or q on the way out). */
const STOPPED = "x: run stopped (Esc); its threads ended";

/** The status line's word for a run that ended without its table. */
function failed(err: unknown): string {
  if (!(err instanceof ExecuteError)) return "x: the run failed (why above)";
  switch (err.code) {
    case "too-large": return "x: not run: too large for this machine (why above)";
    case "unavailable": return "x: not run: the executor is not available";
    // "stopped" answers an aborted signal, and only this file aborts it, after the run has ended here.
    case "stopped":
    case "failed": return "x: the run failed (why above)";
  }
}

function execute(s: ExplorerState, env: ExplorerEnv, apply: Apply, setRun: (r: Execution) => void): void {
  const e = selectedEstimate(s);
  if (e === undefined) {
    apply({ type: "message", message: "no plan selected" });
    return;
  }
  const title = `${e.model}: ${describePlan(e.plan)}`;
  setRun({ title, state: "running", fraction: 0, label: "starting" });
  if (s.view !== "execute") apply({ type: "view", view: "execute" });
  apply({ type: "message", message: "x: running the selected plan (Esc stops it)" });
  const controller = new AbortController();
  let live = true;
  /** Ends the run here, once: false when it had already ended (the user's stop and the executor's answer race). */
  const finish = () => {
    if (!live) return false;
    live = false;
    env.runs.stop = undefined;
    return true;
  };
  env.runs.stop = () => {
    if (!finish()) return;
    controller.abort(); // the executor's work stops; its answer (a rejection) comes after the end and is not heard
    setRun({ title, state: "stopped" });
    apply({ type: "message", message: STOPPED });
  };
  env.execute(s.resultContext.model, s.resultContext.shape, e.plan, (fraction, label) => {
    if (live) setRun({ title, state: "running", fraction, label });
  }, controller.signal)
    .then((table) => {
      if (!finish()) return;
      setRun({ title, state: "done", table });
      apply({ type: "message", message: "x: done: predicted against measured" });
    })
    .catch((err: unknown) => {
      if (!finish()) return;
      setRun({ title, state: "failed", message: err instanceof Error ? err.message : String(err) });
      apply({ type: "message", message: failed(err) });
    });
}

/** Carries out one command against the latest state. */
export function runCommand(cmd: Command, s: ExplorerState, knobs: KnobContext, env: ExplorerEnv, apply: Apply, setRun: (r: Execution) => void): void {
  if (running(env.runs)) {
    // Esc stops the run, then goes back as it does at any time (below); nothing else starts beside the run
    // (a re-plan would share the cores and skew its timings).
    if (cmd.kind === "back") env.runs.stop?.();
    else if (cmd.kind !== "quit") return apply({ type: "message", message: RUN_IN_PROGRESS });
  }
  switch (cmd.kind) {
    case "move": return apply({ type: "move", delta: cmd.delta });
    case "focus": return apply({ type: "focus", index: nextKnob(s.focus, cmd.delta, s.context.model) });
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
