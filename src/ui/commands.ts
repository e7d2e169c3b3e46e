import { relative, isAbsolute } from "node:path";
import { planFieldAsFlag } from "../cli/args.js";
import type { Context } from "../cli/context.js";
import type { Estimate } from "../planner/cost/types.js";
import { describePlan } from "../planner/explain/explain.js";
import { InputError } from "../spec/errors.js";
import type { PlanInput } from "../spec/plan.js";
import { freeStale, nextKnobValue, noValueMessage, stalePins } from "./choices.js";
import { ExecuteError, type ExecuteFn, type Execution } from "./executor.js";
import type { Command } from "./keys.js";
import { freeAll, isPinned, knobApplies, KNOBS, knobValue, nextKnob, showValue, withFlag, type Flags, type KnobContext } from "./knobs.js";
import type { Planner } from "./planner.js";
import { savePlan } from "./save.js";
import { deferredSimulate, type SimulateFn } from "./simulate-job.js";
import { recomputing, selectedEstimate, waitMessage, type Action, type ExplorerState } from "./state.js";

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
  /** How `s` simulates a plan the list has not simulated (default: on this thread, after the screen says so). */
  readonly simulate?: SimulateFn;
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

/**
 * New flags: loaded and validated the way the CLI does, then re-planned; bad ones only say why. `change`,
 * what the re-plan is for, is the message unless told (a message that also lists freed pins).
 */
function setFlags(env: ExplorerEnv, apply: Apply, flags: Flags, message?: string, change?: string): void {
  try {
    const { context, pinned } = env.load(flags);
    apply({ type: "flags", flags, context, pinned, ...(message === undefined ? {} : { message }), ...(change === undefined ? {} : { change }) });
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    apply({ type: "message", message: planFieldAsFlag(e).message });
  }
}

/** A new model or cluster: the pins it cannot keep (ep without experts, a tp its heads do not split into) are freed, and the status line says so. */
function setContext(env: ExplorerEnv, apply: Apply, flags: Flags, message: string): void {
  let loaded: { readonly context: Context; readonly pinned: PlanInput };
  try {
    loaded = env.load(flags);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return apply({ type: "message", message: planFieldAsFlag(e).message });
  }
  const stale = stalePins(flags, loaded.context.model, loaded.context.shape);
  if (stale.length === 0) return apply({ type: "flags", flags, context: loaded.context, pinned: loaded.pinned, message });
  const freed = freeStale(flags, stale);
  setFlags(env, apply, freed.flags, `${message}${freed.said}`, message);
}

function pin(s: ExplorerState, env: ExplorerEnv, apply: Apply, index: number): void {
  const knob = KNOBS[index]!;
  if (!knobApplies(knob, s.context.model)) {
    // a pin from the command line that the model cannot have is freed (the knob is not on screen)
    if (isPinned(s.flags, knob)) return setFlags(env, apply, withFlag(s.flags, knob.flag, undefined), `${knob.label} free (${s.context.model.name} has none)`);
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
  const plan = selectedEstimate(s)?.plan;
  // where the plan shows no value ("-": a schedule with one stage), + and - start from the one it runs with
  const current = knobValue(knob, s.flags, knobs, plan) ?? (plan === undefined ? undefined : knob.stepFrom?.(plan));
  const next = nextKnobValue(knob, s.flags, knobs, current, delta);
  if (next === undefined || next === current) {
    const which = typeof current === "number" ? (delta > 0 ? "larger" : "smaller") : "other";
    apply({ type: "message", message: noValueMessage(knob, s.flags, which, plan) });
    return;
  }
  const flags = withFlag(s.flags, knob.flag, next);
  const message = `${knob.label} ${showValue(next)}${knob.kind === "plan" ? " (pinned)" : ""}`;
  if (knob.flag === "model" || knob.flag === "cluster") return setContext(env, apply, flags, message);
  setFlags(env, apply, flags, message);
}

function save(s: ExplorerState, env: ExplorerEnv, apply: Apply): void {
  const e = selectedEstimate(s);
  if (e === undefined) {
    apply({ type: "message", message: "nothing to save yet" });
    return;
  }
  const write = (simulated: Estimate) => {
    try {
      const path = savePlan(env.saveDir, simulated);
      const rel = relative(process.cwd(), path);
      apply({ type: "message", message: `saved ${rel.startsWith("..") || isAbsolute(rel) ? path : rel}` });
    } catch (err) {
      apply({ type: "message", message: `could not save: ${err instanceof Error ? err.message : String(err)}` });
    }
  };
  // The list's plans are simulated once the ranking is final; before that (or for a plan that does not
  // fit) simulate it now, so the file always holds what `meshplan simulate` gives. That takes seconds for
  // a large plan: the status line says so first, and keys keep working meanwhile.
  if (s.result?.timelines !== undefined && s.result.plans.includes(e)) return write(e);
  apply({ type: "message", message: "saving: simulating the plan first..." });
  const { model, shape } = s.resultContext;
  (env.simulate ?? deferredSimulate)(model, shape, e.plan).then(write, (err: unknown) => {
    apply({ type: "message", message: `could not save: ${err instanceof Error ? err.message : String(err)}` });
  });
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

/**
 * Whether a command acts on the selected plan (saves, runs, marks it, or pins a knob at its value): while
 * the list on screen is the previous one, that plan may not be in the new ranking at all.
 */
function actsOnPlan(cmd: Command, s: ExplorerState): boolean {
  switch (cmd.kind) {
    case "save": case "execute": case "mark": return true;
    case "pin": return KNOBS[cmd.knob]!.kind === "plan" && !isPinned(s.flags, KNOBS[cmd.knob]!);
    case "step": return KNOBS[s.focus]!.kind === "plan" && !isPinned(s.flags, KNOBS[s.focus]!);
    default: return false;
  }
}

/** Carries out one command against the latest state. */
export function runCommand(cmd: Command, s: ExplorerState, knobs: KnobContext, env: ExplorerEnv, apply: Apply, setRun: (r: Execution) => void): void {
  if (running(env.runs)) {
    // Esc stops the run, then goes back as it does at any time (below); nothing else starts beside the run
    // (a re-plan would share the cores and skew its timings).
    if (cmd.kind === "back") env.runs.stop?.();
    else if (cmd.kind !== "quit") return apply({ type: "message", message: RUN_IN_PROGRESS });
  }
  if (recomputing(s) !== undefined && actsOnPlan(cmd, s)) return apply({ type: "message", message: waitMessage(s.change) });
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
