import { planInputFrom } from "../cli/context.js";
import type { FlagValue } from "../cli/args.js";
import { forEachCandidate } from "../planner/search/space.js";
import { InputError } from "../spec/errors.js";
import { resolvePlan, type PlanInput } from "../spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import { freeAll, isPinned, knobApplies, KNOBS, knobOptions, showValue, stepValue, withFlag, type Flags, type KnobContext, type KnobSpec } from "./knobs.js";

/**
 * Which values a knob may step to: those that leave the search a valid plan with every other pin, so that
 * + and - never empty the list (a value no plan has would "change nothing" but an error). Validity is the
 * search's own: a candidate of its space (forEachCandidate) that resolvePlan accepts; no rule is copied here.
 */
const FOUND = new Error("found");

/** Whether the search has at least one valid plan for these pins (it stops at the first). */
export function hasPlan(model: ModelSpec, shape: ClusterShape, pinned: PlanInput): boolean {
  try {
    forEachCandidate(model, shape, pinned, (input) => {
      try {
        resolvePlan(model, shape, input);
      } catch (e) {
        if (e instanceof InputError) return;
        throw e;
      }
      throw FOUND;
    });
  } catch (e) {
    if (e === FOUND) return true;
    if (e instanceof InputError) return false; // pins that contradict each other (the search's checkPins)
    throw e;
  }
  return false;
}

/** The pins the flags give, or undefined where the CLI refuses them. */
function pinsOf(flags: Flags): PlanInput | undefined {
  try {
    return planInputFrom(flags);
  } catch (e) {
    if (e instanceof InputError) return undefined;
    throw e;
  }
}

/**
 * Whether `value` of a knob leaves a plan with the other flags. The model and the cluster are always
 * allowed: changing them frees the pins they cannot keep instead (stalePins).
 */
export function knobAllows(knob: KnobSpec, value: FlagValue, flags: Flags, c: KnobContext): boolean {
  if (knob.flag === "model" || knob.flag === "cluster") return true;
  const gpus = knob.flag === "gpus" && typeof value === "number";
  const pinned = pinsOf(gpus ? flags : withFlag(flags, knob.flag, value));
  return pinned !== undefined && hasPlan(c.model, gpus ? { ...c.shape, gpus: value } : c.shape, pinned);
}

/**
 * What + (1) or - (-1) gives a knob from `current`: the nearest option in that direction that has a plan
 * (numbers), or the next such option round the list (names); `current` where there is none.
 */
export function nextKnobValue(knob: KnobSpec, flags: Flags, c: KnobContext, current: FlagValue | undefined, delta: 1 | -1): FlagValue | undefined {
  return stepValue(knobOptions(knob, c), current, delta, (v) => knobAllows(knob, v, flags, c));
}

/** " with tp 8, vpp 16 pinned": the plan knobs pinned besides `except`, or "" where none is. */
export function otherPins(flags: Flags, except: KnobSpec): string {
  const pins = KNOBS.filter((k) => k !== except && isPinned(flags, k)).map((k) => `${k.label} ${showValue(flags[k.flag])}`);
  return pins.length === 0 ? "" : ` with ${pins.join(", ")} pinned`;
}

/** What the status line says when + or - finds no value with a plan. */
export function noValueMessage(knob: KnobSpec, flags: Flags, which: "larger" | "smaller" | "other", selected: Plan | undefined): string {
  if (knob.flag === "schedule" && selected?.pp === 1 && flags.pp === 1) {
    return "sched: pp 1 has one schedule (1f1b): free pp or pin 2 or more for a pipeline";
  }
  return `${knob.label}: no ${which} value has a plan${otherPins(flags, knob)}`;
}

export interface StalePin {
  readonly knob: KnobSpec;
  readonly why: string;
}

/**
 * The pins a new model or cluster cannot keep: a knob that does not apply to the model (ep without
 * experts), and a pin that on its own leaves the search no plan (tp 16 for a model of 8 heads). Pins valid
 * alone but not together are kept: the status line then says why there is no plan.
 */
export function stalePins(flags: Flags, model: ModelSpec, shape: ClusterShape): StalePin[] {
  const out: StalePin[] = [];
  const base = freeAll(flags);
  const basePins = pinsOf(base);
  // Flags beyond the knobs (--layers-per-stage, ...) may leave no plan themselves: no pin is to blame.
  const judge = basePins !== undefined && hasPlan(model, shape, basePins);
  for (const k of KNOBS) {
    if (!isPinned(flags, k)) continue;
    if (!knobApplies(k, model)) {
      out.push({ knob: k, why: `only for ${k.onlyWith ?? "other models"}` });
      continue;
    }
    const alone = judge ? pinsOf(withFlag(base, k.flag, flags[k.flag])) : undefined;
    if (judge && (alone === undefined || !hasPlan(model, shape, alone))) out.push({ knob: k, why: `no plan of ${model.name} on ${shape.gpus} GPUs has it` });
  }
  return out;
}

/** The flags without the stale pins, and the status line's word for them ("" where none was freed). */
export function freeStale(flags: Flags, stale: readonly StalePin[]): { readonly flags: Flags; readonly said: string } {
  let next = flags;
  for (const p of stale) next = withFlag(next, p.knob.flag, undefined);
  return { flags: next, said: stale.map((p) => `; freed ${p.knob.label} ${showValue(flags[p.knob.flag])}: ${p.why}`).join("") };
}
