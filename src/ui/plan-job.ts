import { performance } from "node:perf_hooks";
import { planFieldAsFlag } from "../cli/args.js";
import type { Estimate } from "../planner/cost/types.js";
import { planKey, searchPlans } from "../planner/search/search.js";
import { simulate } from "../simulator/simulate.js";
import type { Timeline } from "../simulator/types.js";
import { InputError } from "../spec/errors.js";
import type { PlanInput } from "../spec/plan.js";
import type { ClusterShape, ModelSpec } from "../spec/types.js";

/** One re-plan: what the explorer asks whenever a knob changes. Plain data (it crosses to a worker). */
export interface PlanRequest {
  readonly id: number;
  readonly model: ModelSpec;
  readonly shape: ClusterShape;
  readonly pinned: PlanInput;
  readonly top: number;
}

export interface PlanResult {
  readonly searched: number;
  readonly feasible: number;
  /** Of the searched, ruled out by a speed bound before evaluation (SearchResult.skipped.computeBound). */
  readonly bounded: number;
  /** Fitting plans, best first. */
  readonly plans: readonly Estimate[];
  /** The simulated timeline of each plan (refined results only), index for index. */
  readonly timelines?: readonly Timeline[];
  /** When nothing fits: the plans that overflow least. */
  readonly closest: readonly Estimate[];
  /** Wall seconds of the search. */
  readonly seconds: number;
}

/**
 * `quick`: the analytic ranking, out first (0.1 to 0.5 s for llama3-70b on 64 to 512 GPUs; README,
 * Explorer, Speed); `refined`: exactly `meshplan plan --top K`'s list, ranked by the event simulator, with
 * timelines; `error`: bad input (a pinned value no plan has), in one line.
 */
export type PlanUpdate =
  | { readonly id: number; readonly phase: "quick" | "refined"; readonly result: PlanResult }
  | { readonly id: number; readonly phase: "error"; readonly message: string };

/** Why there is no plan, with plan fields named as their flags, as the CLI says it (`--sp (sequenceParallel) = true ...`). */
function failed(id: number, e: unknown): PlanUpdate {
  return { id, phase: "error", message: e instanceof InputError ? planFieldAsFlag(e).message : `internal error: ${e instanceof Error ? e.message : String(e)}` };
}

/**
 * The analytic ranking with the integer program on a short shortlist, half the list's meshes (each
 * gives its even and its solved layout, so the list is usually full).
 */
export function quickSearch(req: PlanRequest): PlanUpdate {
  const t0 = performance.now();
  try {
    const r = searchPlans(req.model, req.shape, req.pinned, { top: req.top, shortlist: Math.ceil(req.top / 2) });
    return { id: req.id, phase: "quick", result: { searched: r.searched, feasible: r.feasible, bounded: r.skipped.computeBound, plans: r.plans, closest: r.closest, seconds: (performance.now() - t0) / 1e3 } };
  } catch (e) {
    return failed(req.id, e);
  }
}

class Superseded extends Error {}

/**
 * `meshplan plan --top K`'s own search (searchPlans with the simulator as `refine`), keeping each
 * simulated timeline. `isCurrent` is asked before every simulation: once a newer request exists the
 * search stops there and nothing is returned, so stale work never holds the thread for long.
 */
export function refinedSearch(req: PlanRequest, isCurrent: () => boolean = () => true): PlanUpdate | undefined {
  const t0 = performance.now();
  const timelines = new Map<string, Timeline>();
  try {
    const r = searchPlans(req.model, req.shape, req.pinned, {
      top: req.top,
      refine: (model, shape, plan) => {
        if (!isCurrent()) throw new Superseded();
        const s = simulate(model, shape, plan);
        timelines.set(planKey(plan), s.timeline);
        return s.estimate;
      },
    });
    const result: PlanResult = {
      searched: r.searched, feasible: r.feasible, bounded: r.skipped.computeBound, plans: r.plans, closest: r.closest, seconds: (performance.now() - t0) / 1e3,
      timelines: r.plans.map((e) => timelines.get(planKey(e.plan))!),
    };
    return { id: req.id, phase: "refined", result };
  } catch (e) {
    return e instanceof Superseded ? undefined : failed(req.id, e);
  }
}

/** Both in turn on one thread, as a generator: the caller yields to the event loop between them. */
export function* planJob(req: PlanRequest, isCurrent: () => boolean = () => true): Generator<PlanUpdate, void, void> {
  const quick = quickSearch(req);
  yield quick;
  if (quick.phase === "error" || !isCurrent()) return;
  const refined = refinedSearch(req, isCurrent);
  if (refined !== undefined) yield refined;
}
