import type { Context } from "../cli/context.js";
import type { Estimate } from "../planner/cost/types.js";
import type { Timeline } from "../simulator/types.js";
import type { PlanInput } from "../spec/plan.js";
import type { Plan } from "../spec/types.js";
import { FIRST_PLAN_KNOB, KNOBS, type Flags } from "./knobs.js";
import type { PlanResult, PlanUpdate } from "./plan-job.js";

/** The explorer's state; `reduce` is pure (loading files, planning and saving happen in the component). */
export type View = "main" | "help" | "compare" | "execute";
export type TimelineWindow = "start" | "whole" | "end";

export interface ExplorerState {
  /** Everything the user chose, as command-line flags (see knobs.ts). */
  readonly flags: Flags;
  readonly context: Context;
  readonly pinned: PlanInput;
  /** The request whose updates count; bumps on every change of flags. */
  readonly request: number;
  readonly phase: "searching" | "refining" | "ready" | "error";
  readonly result: PlanResult | undefined;
  /** The model and cluster the shown result is for (until a new result arrives, the previous ones). */
  readonly resultContext: Context;
  readonly error: string | undefined;
  readonly selected: number;
  /** The selected plan, which the selection follows across re-plans. */
  readonly selectedPlan: Plan | undefined;
  /** Index into KNOBS of the knob that + - and Enter act on. */
  readonly focus: number;
  /** Plans marked for comparison (at most two; kept across re-plans). */
  readonly marks: readonly Estimate[];
  readonly view: View;
  readonly window: TimelineWindow;
  readonly message: string | undefined;
  /** What the latest change of flags was ("gpus 128"): what the re-plan in progress is for. */
  readonly change: string | undefined;
}

export type Action =
  | { readonly type: "flags"; readonly flags: Flags; readonly context: Context; readonly pinned: PlanInput; readonly message?: string; readonly change?: string }
  | { readonly type: "update"; readonly update: PlanUpdate }
  | { readonly type: "move"; readonly delta: number }
  | { readonly type: "focus"; readonly index: number }
  | { readonly type: "mark" }
  | { readonly type: "view"; readonly view: View }
  | { readonly type: "window" }
  | { readonly type: "message"; readonly message: string | undefined };

/** A plan's knobs, whatever its batch and layer layout. */
export function planIdentity(p: Plan): string {
  return [p.dp, p.tp, p.pp, p.cp, p.ep, p.virtualStages, p.microBatch, p.schedule, p.zero, p.recompute, p.sequenceParallel].join(",");
}

/** A plan's knobs and its layout: two plans of the same knobs can differ in layers per stage. */
function planLayout(p: Plan): string {
  return `${planIdentity(p)}|${p.layersPerStage.join("/")}|${p.recomputeLayersPerStage.join("/")}`;
}

/** The rows of the list: the fitting plans, or the closest ones when nothing fits. */
export function entries(result: PlanResult | undefined): readonly Estimate[] {
  if (result === undefined) return [];
  return result.plans.length > 0 ? result.plans : result.closest;
}

export function selectedEstimate(s: ExplorerState): Estimate | undefined {
  return entries(s.result)[s.selected];
}

/** The selected plan's simulated timeline, once the simulator has ranked the list. */
export function selectedTimeline(s: ExplorerState): Timeline | undefined {
  return s.result?.plans.length === 0 ? undefined : s.result?.timelines?.[s.selected];
}

/**
 * While a re-plan searches, the list on screen is the previous one (for other knobs, another GPU count):
 * what the new ranking is for; undefined when the list shown is the current one (or there is none).
 */
export function recomputing(s: ExplorerState): string | undefined {
  return s.phase === "searching" && s.result !== undefined ? (s.change ?? "the new knobs") : undefined;
}

/** What a key that acts on a plan says while the list is the previous one. */
export function waitMessage(change: string | undefined): string {
  return `the list is being recomputed (${change ?? "the new knobs"}): wait for it`;
}

export function initialState(flags: Flags, context: Context, pinned: PlanInput): ExplorerState {
  return {
    flags, context, pinned, request: 1, phase: "searching", result: undefined, resultContext: context, error: undefined,
    selected: 0, selectedPlan: undefined, focus: FIRST_PLAN_KNOB, marks: [],
    view: "main", window: "start", message: undefined, change: undefined,
  };
}

function select(s: ExplorerState, index: number): ExplorerState {
  const list = entries(s.result);
  const i = Math.max(0, Math.min(list.length - 1, index));
  const e = list[i];
  return { ...s, selected: e === undefined ? 0 : i, selectedPlan: e === undefined ? s.selectedPlan : e.plan };
}

function applyUpdate(s0: ExplorerState, u: PlanUpdate): ExplorerState {
  if (u.id !== s0.request) return s0; // a superseded request
  if (u.phase === "quick" && s0.phase === "ready") return s0; // the simulator's ranking came first
  // "wait for it" is over once the new list is out: the change it waited for is said again
  const s = s0.message === waitMessage(s0.change) ? { ...s0, message: s0.change } : s0;
  if (u.phase === "error") return { ...s, phase: "error", error: u.message, result: undefined, resultContext: s.context, selected: 0 };
  const next: ExplorerState = { ...s, phase: u.phase === "quick" ? "refining" : "ready", error: undefined, result: u.result, resultContext: s.context };
  // The same plan when it is still listed, else one with the same knobs (another layout), else the best.
  // The quick list never decides: the plan chosen before (or none: the best) is kept for the final list.
  const list = entries(u.result);
  const was = s.selectedPlan;
  const find = (key: (p: Plan) => string) => (was === undefined ? -1 : list.findIndex((e) => key(e.plan) === key(was)));
  const sameLayout = find(planLayout);
  const follow = sameLayout >= 0 ? sameLayout : find(planIdentity);
  if (follow >= 0) return { ...next, selected: follow };
  return u.phase === "quick" ? { ...next, selected: 0 } : select(next, 0);
}

export function reduce(s: ExplorerState, a: Action): ExplorerState {
  switch (a.type) {
    case "flags":
      return { ...s, flags: a.flags, context: a.context, pinned: a.pinned, request: s.request + 1, phase: "searching", message: a.message, change: a.change ?? a.message };
    case "update":
      return applyUpdate(s, a.update);
    case "move":
      return select(s, s.selected + a.delta);
    case "focus":
      return { ...s, focus: ((a.index % KNOBS.length) + KNOBS.length) % KNOBS.length };
    case "mark": {
      const e = selectedEstimate(s);
      if (e === undefined) return s;
      const key = markKey(e);
      const marked = s.marks.some((m) => markKey(m) === key);
      const marks = marked ? s.marks.filter((m) => markKey(m) !== key) : [...s.marks, e].slice(-2);
      return { ...s, marks, message: marked ? "unmarked" : marks.length === 2 ? "two plans marked: v compares them" : "marked: mark another with space, then v" };
    }
    case "view":
      return { ...s, view: s.view === a.view ? "main" : a.view };
    case "window":
      return { ...s, window: s.window === "start" ? "whole" : s.window === "whole" ? "end" : "start" };
    case "message":
      return { ...s, message: a.message };
  }
}

/** A marked plan's identity: the plan on its model, cluster and batch (marks outlive re-plans). */
function markKey(e: Estimate): string {
  return [e.model, e.cluster.name, e.cluster.gpu, e.cluster.gpus, e.plan.globalBatch, e.plan.seqLen, planLayout(e.plan)].join("|");
}

export function isMarked(s: ExplorerState, e: Estimate): boolean {
  const key = markKey(e);
  return s.marks.some((m) => markKey(m) === key);
}
