import type { FlagName, FlagValue } from "../cli/args.js";
import type { Context } from "../cli/context.js";
import { layoutExists } from "../planner/partition/problem.js";
import { searchGlobalBatch } from "../planner/search/space.js";
import { serversLabel } from "../planner/explain/explain.js";
import { divisorsOf } from "../math/divisors.js";
import type { PlanInput } from "../spec/plan.js";
import { RECOMPUTES, SCHEDULES, type ClusterShape, type ModelSpec, type Plan } from "../spec/types.js";

/**
 * The explorer's knobs. Its whole input is a set of command-line flags (the same vocabulary as
 * `meshplan plan`), so loadContext and planInputFrom validate every change exactly as the CLI does:
 * context knobs change the model, cluster and batch; plan knobs pin a dimension of the search.
 */
export type Flags = Partial<Record<FlagName, FlagValue>>;

/**
 * Parameter servers pinned by --ps, as the knob bar shows them ("4 sync", "4 async/2"; the staleness bound
 * is resolvePlan's default 1 where --async comes without --staleness); undefined without servers.
 */
export function serversText(flags: Flags): string | undefined {
  const ps = flags.ps;
  if (typeof ps !== "number" || ps === 0) return undefined;
  const asynchronous = flags.async === true;
  return serversLabel(ps, asynchronous, typeof flags.staleness === "number" ? flags.staleness : asynchronous ? 1 : 0);
}

export interface KnobSpec {
  readonly flag: FlagName;
  readonly label: string;
  /** A plan knob pins a dimension of the search; a context knob changes what is planned. */
  readonly kind: "context" | "plan";
  /** Key that pins or frees it (plan knobs). */
  readonly shortcut?: string;
  /** The selected plan's value of a plan knob, as the flag takes it; undefined where it does not apply ("-"). */
  readonly ofPlan?: (p: Plan) => FlagValue | undefined;
  /** Shown only for models it applies to (expert parallelism: models with experts). */
  readonly appliesTo?: (m: ModelSpec) => boolean;
  /** Why a plan has no value of it (said when it is pinned from such a plan). */
  readonly onlyWith?: string;
  /** Where + and - start from when the plan shows no value ("-"): the value it runs with (1f1b with one stage). */
  readonly stepFrom?: (p: Plan) => FlagValue;
}

export const KNOBS: readonly KnobSpec[] = [
  { flag: "model", label: "model", kind: "context" },
  { flag: "gpus", label: "gpus", kind: "context" },
  { flag: "cluster", label: "cluster", kind: "context" },
  { flag: "seq", label: "seq", kind: "context" },
  { flag: "global-batch", label: "batch", kind: "context" },
  { flag: "tp", label: "tp", kind: "plan", shortcut: "t", ofPlan: (p) => p.tp },
  { flag: "pp", label: "pp", kind: "plan", shortcut: "p", ofPlan: (p) => p.pp },
  { flag: "dp", label: "dp", kind: "plan", shortcut: "d", ofPlan: (p) => p.dp },
  { flag: "cp", label: "cp", kind: "plan", shortcut: "c", ofPlan: (p) => p.cp },
  // expert parallelism: carved out of dp * cp for the MoE layers (design brief section 3)
  { flag: "ep", label: "ep", kind: "plan", shortcut: "m", ofPlan: (p) => p.ep, appliesTo: (m) => m.moe !== undefined, onlyWith: "models with experts (MoE)" },
  { flag: "micro-batch", label: "mb", kind: "plan", shortcut: "b", ofPlan: (p) => p.microBatch },
  // one stage has no pipeline schedule (the list shows "-"; a schedule pinned with pp 1 is refused)
  { flag: "schedule", label: "sched", kind: "plan", shortcut: "e", ofPlan: (p) => (p.pp > 1 ? p.schedule : undefined), onlyWith: "pp > 1", stepFrom: (p) => p.schedule },
  // the interleaved schedule's virtual stages (chunks per stage): the list's int/v
  { flag: "vpp", label: "vpp", kind: "plan", shortcut: "i", ofPlan: (p) => (p.pp > 1 && p.schedule === "interleaved" ? p.virtualStages : undefined), onlyWith: "the interleaved schedule", stepFrom: (p) => p.virtualStages },
  { flag: "zero", label: "ZeRO", kind: "plan", shortcut: "z", ofPlan: (p) => p.zero },
  { flag: "recompute", label: "rc", kind: "plan", shortcut: "r", ofPlan: (p) => p.recompute },
  // sequence parallel only exists with tp > 1
  { flag: "sp", label: "SP", kind: "plan", shortcut: "o", ofPlan: (p) => (p.tp > 1 ? p.sequenceParallel : undefined), onlyWith: "tp > 1", stepFrom: (p) => p.sequenceParallel },
];

/** Whether a knob is shown (and can be chosen) for this model. */
export function knobApplies(knob: KnobSpec, model: ModelSpec): boolean {
  return knob.appliesTo?.(model) ?? true;
}

/** The knob `delta` places from `from` (an index into KNOBS), skipping those that do not apply to the model, wrapping around. */
export function nextKnob(from: number, delta: number, model: ModelSpec): number {
  const n = KNOBS.length;
  let i = from;
  for (let moved = 0; moved < Math.abs(delta); moved++) {
    do i = (((i + Math.sign(delta)) % n) + n) % n;
    while (!knobApplies(KNOBS[i]!, model));
  }
  return i;
}

export const FIRST_PLAN_KNOB = KNOBS.findIndex((k) => k.kind === "plan");

/** What the context knobs step through, given the loaded context. */
export interface KnobContext {
  readonly model: ModelSpec;
  readonly cluster: string;
  readonly gpus: number;
  /** The cluster shape the knobs' choices are checked against (choices.ts). */
  readonly shape: ClusterShape;
  readonly modelNames: readonly string[];
  readonly clusterNames: readonly string[];
  /** The values in use where the flags leave them to defaults (the model's sequence, the search's batch). */
  readonly seqLen: number;
  readonly globalBatch: number;
  /** The pinned pipeline depth, which decides the virtual stages a layout exists for. */
  readonly pp?: number | undefined;
}

export function knobContext(context: Context, pinned: PlanInput, names: { readonly modelNames: readonly string[]; readonly clusterNames: readonly string[] }): KnobContext {
  const { model, shape } = context;
  return {
    model, cluster: shape.spec.name, gpus: shape.gpus, shape, modelNames: names.modelNames, clusterNames: names.clusterNames,
    seqLen: pinned.seqLen ?? model.seqLen, globalBatch: searchGlobalBatch(model, pinned), pp: pinned.pp,
  };
}

const powersOfTwo = (from: number, to: number) => {
  const out: number[] = [];
  for (let v = from; v <= to; v *= 2) out.push(v);
  return out;
};

/** The values a knob steps through with + and -, in order. */
export function knobOptions(knob: KnobSpec, c: KnobContext): readonly FlagValue[] {
  const m = c.model;
  switch (knob.flag) {
    case "model": return c.modelNames;
    case "cluster": return c.clusterNames;
    case "gpus": return powersOfTwo(1, 32768);
    // every power of two (tiny-gpt's sequence is 32) and the model's own length
    case "seq": return [...new Set([...powersOfTwo(1, 1 << 20), m.seqLen])].sort((a, b) => a - b);
    case "global-batch": return powersOfTwo(1, 1 << 16);
    case "tp": return divisorsOf(c.gpus).filter((t) => m.attentionHeads % t === 0 && m.ffnHiddenSize % t === 0 && (m.kvHeads % t === 0 || t % m.kvHeads === 0));
    case "pp": return divisorsOf(c.gpus).filter((p) => p <= m.layers);
    case "dp": return divisorsOf(c.gpus);
    case "cp": return divisorsOf(c.gpus).filter((x) => c.seqLen % x === 0);
    case "ep": return m.moe === undefined ? [1] : divisorsOf(m.moe.experts).filter((e) => c.gpus % e === 0);
    case "micro-batch": return powersOfTwo(1, 64).filter((b) => c.globalBatch % b === 0);
    case "schedule": return SCHEDULES;
    case "vpp": return virtualStageOptions(m.layers, c.pp);
    case "zero": return [0, 1, 2, 3];
    case "recompute": return RECOMPUTES;
    case "sp": return [true, false];
    default: return [];
  }
}

/** Most virtual stages the knob offers (the search tries 2, 3, 4 and 8 by itself). */
const MAX_VIRTUAL_STAGES = 16;

/**
 * Virtual stages the search can lay out (layoutExists: the layers fill pp * v chunks, the ends allowed
 * one layer less) for the pinned pipeline depth, or for the shallowest pipeline (2 stages) when pp is free.
 */
export function virtualStageOptions(layers: number, pp: number | undefined): number[] {
  const out: number[] = [];
  for (let v = 2; v <= MAX_VIRTUAL_STAGES; v++) if (layoutExists(layers, pp ?? 2, v)) out.push(v);
  return out;
}

/**
 * The next (+1) or previous (-1) value from `current` that `allowed` accepts. Numeric options step to the
 * nearest value beyond the current one, so a value not in the list (say 96 GPUs) still moves sensibly;
 * others cycle (from no value, + gives the first and - the last). `current` where no other is allowed.
 */
export function stepValue(options: readonly FlagValue[], current: FlagValue | undefined, delta: 1 | -1, allowed: (v: FlagValue) => boolean = () => true): FlagValue | undefined {
  if (options.length === 0) return current;
  if (typeof current === "number" && options.every((o) => typeof o === "number")) {
    const nums = options as readonly number[];
    const beyond = delta > 0 ? nums.filter((v) => v > current) : nums.filter((v) => v < current).reverse();
    return beyond.find(allowed) ?? current;
  }
  const n = options.length;
  const i = options.findIndex((o) => o === current);
  const start = i >= 0 ? i : delta > 0 ? -1 : n;
  for (let k = 1; k <= (i >= 0 ? n - 1 : n); k++) {
    const v = options[(((start + delta * k) % n) + n) % n]!;
    if (allowed(v)) return v;
  }
  return current;
}

/** The value a knob shows: the flag when set, else what is in use (context) or the selected plan's (plan). */
export function knobValue(knob: KnobSpec, flags: Flags, c: KnobContext, selected: Plan | undefined): FlagValue | undefined {
  const set = flags[knob.flag];
  if (set !== undefined) return set;
  if (knob.flag === "seq") return c.seqLen;
  if (knob.flag === "global-batch") return c.globalBatch;
  if (knob.flag === "gpus") return c.gpus;
  if (knob.flag === "model") return c.model.name;
  if (knob.flag === "cluster") return c.cluster;
  return selected === undefined ? undefined : knob.ofPlan?.(selected);
}

/** A value in the knob line: as the list's columns write it (int, sel), so that the line fits 80 columns. */
export function shortValue(v: FlagValue | undefined): string {
  if (v === "interleaved") return "int";
  if (v === "selective") return "sel";
  return showValue(v);
}

export function showValue(v: FlagValue | undefined): string {
  if (v === undefined) return "-";
  if (typeof v === "boolean") return v ? "on" : "off";
  if (Array.isArray(v)) return v.join(",");
  return String(v);
}

/** Flags with one knob set to a value, or freed (undefined). */
export function withFlag(flags: Flags, flag: FlagName, value: FlagValue | undefined): Flags {
  const next: Flags = { ...flags };
  if (value === undefined) delete next[flag];
  else next[flag] = value;
  // The interleaved schedule's virtual stages go with it: a pinned --vpp with another schedule is invalid
  // (a freed schedule keeps them: the search pins the interleaved one for them).
  if (flag === "schedule" && value !== undefined && value !== "interleaved") delete next.vpp;
  // Virtual stages ask for the interleaved schedule (the search pins it for a --vpp above 1): another
  // pinned schedule gives way instead of contradicting them.
  if (flag === "vpp" && typeof value === "number" && value > 1 && next.schedule !== undefined && next.schedule !== "interleaved") delete next.schedule;
  return next;
}

/** Every plan knob freed: the search explores them all again. */
export function freeAll(flags: Flags): Flags {
  let next = flags;
  for (const k of KNOBS) if (k.kind === "plan") next = withFlag(next, k.flag, undefined);
  return next;
}

export function isPinned(flags: Flags, knob: KnobSpec): boolean {
  return knob.kind === "plan" && flags[knob.flag] !== undefined;
}
