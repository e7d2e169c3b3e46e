import type { ModelSpec, Plan } from "../../spec/types.js";
import type { ChannelSpec, FabricSpec, GroupSpec } from "../comm/fabric.js";
import { microBatchCount } from "../../spec/plan.js";
import { elements, headKeepsTiedCopy, modelUnits, stageUnits, unitSlots } from "../model/layout.js";
import { headStage, isVShape } from "../../spec/virtual-stages.js";
import { gradientBucket } from "./bucket.js";

/**
 * The ranks of a plan as one grid (design brief section 3; Megatron-LM's order, picotron's
 * process_group_manager): rank = tp + t*(cp + c*(dp + d*pp)), tp varying fastest. Parameter servers, when
 * the plan has them, are extra ranks after the workers.
 */
export interface Coords {
  readonly tp: number;
  readonly cp: number;
  readonly dp: number;
  readonly pp: number;
}

export function workerCount(plan: Plan): number {
  return plan.tp * plan.cp * plan.dp * plan.pp;
}

export function rankOf(plan: Plan, c: Coords): number {
  return c.tp + plan.tp * (c.cp + plan.cp * (c.dp + plan.dp * c.pp));
}

export function coordsOf(plan: Plan, rank: number): Coords {
  const tp = rank % plan.tp;
  const cp = Math.floor(rank / plan.tp) % plan.cp;
  const dp = Math.floor(rank / (plan.tp * plan.cp)) % plan.dp;
  const pp = Math.floor(rank / (plan.tp * plan.cp * plan.dp));
  return { tp, cp, dp, pp };
}

export type Axis = "tp" | "cp" | "dp" | "pp";

/** The ranks that differ from `rank` only along `axes`, in rank order. */
export function groupMembers(plan: Plan, rank: number, axes: readonly Axis[]): number[] {
  const base = coordsOf(plan, rank);
  const out: number[] = [];
  for (let r = 0; r < workerCount(plan); r++) {
    const c = coordsOf(plan, r);
    if ((["tp", "cp", "dp", "pp"] as const).every((a) => axes.includes(a) || c[a] === base[a])) out.push(r);
  }
  return out;
}

/**
 * Group names: the tp group, the cp group, the data-parallel (dp x cp) group, the pair that sums a tied
 * embedding's two copies (the first stage's rank and the head's, of the same tp, cp and dp coordinates)
 * and the world.
 */
export function groupName(kind: "tp" | "cp" | "dp" | "ep" | "edp" | "tied" | "world", members: readonly number[]): string {
  return `${kind}[${members.join(",")}]`;
}

/** Every group of more than one rank, each once: the groups along `axes`, or those `membersOf` gives each rank. */
function uniqueGroups(plan: Plan, membersOf: readonly Axis[] | ((rank: number) => number[])): number[][] {
  const seen = new Map<string, number[]>();
  for (let r = 0; r < workerCount(plan); r++) {
    const m = typeof membersOf === "function" ? membersOf(r) : groupMembers(plan, r, membersOf);
    seen.set(m.join(","), m);
  }
  return [...seen.values()].filter((m) => m.length > 1);
}

/**
 * A rank's index among the dp x cp ranks of its tp and pipeline coordinates, cp varying fastest (the rank
 * order's): the ranks a mixture of experts' expert-parallel groups are carved from.
 */
function dataContextIndex(plan: Plan, c: Coords): number {
  return c.dp * plan.cp + c.cp;
}

/**
 * Expert parallel: a rank's place in its ep group (Megatron-LM's expert-parallel group: ep consecutive
 * ranks of the dp x cp ranks of the same tp and pipeline coordinates, dataContextIndex), which names the
 * block of experts it holds.
 */
export function epRankOf(plan: Plan, c: Coords): number {
  return dataContextIndex(plan, c) % plan.ep;
}

/** The members of `rank`'s ep group, in rank order (itself alone without expert parallelism). */
export function expertMembers(plan: Plan, rank: number): number[] {
  const block = (r: number) => Math.floor(dataContextIndex(plan, coordsOf(plan, r)) / plan.ep);
  return groupMembers(plan, rank, ["dp", "cp"]).filter((r) => block(r) === block(rank));
}

/**
 * The members of `rank`'s expert data-parallel group (the cost model's edp: dp x cp / ep ranks), the
 * data-parallel ranks that hold the same experts: the same place in their ep groups.
 */
export function expertDataMembers(plan: Plan, rank: number): number[] {
  const c = coordsOf(plan, rank);
  return groupMembers(plan, rank, ["dp", "cp"]).filter((r) => epRankOf(plan, coordsOf(plan, r)) === epRankOf(plan, c));
}

/** Floats the largest tensor a collective of each group carries for this model and plan. */
export function capacities(model: ModelSpec, plan: Plan): { tp: number; cp: number; dp: number; pp: number; ps: number; ep: number } {
  const rows = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  const units = modelUnits(model).map((u) => unitSlots(u, plan.tp));
  // Every unit as its stage holds it: the head's grows by a tied embedding's copy (layout.ts headKeepsTiedCopy).
  const largestUnit = Math.max(...Array.from({ length: plan.pp }, (_, s) => stageUnits(model, plan, s).flat().map((u) => unitSlots(u, plan.tp).size)).flat());
  const replicated = units.reduce((a, u) => a + u.tensors.filter((t) => t.spec.splitAxis === null).reduce((b, t) => b + elements(t.shape), 0), 0);
  const kv = (model.kvHeads / plan.tp) * model.headDim;
  const all = units.reduce((a, u) => a + u.size, 0);
  return {
    tp: Math.max(rows * h, rows * model.vocabSize / plan.tp, replicated),
    cp: plan.cp * rows * kv,
    dp: largestUnit,
    pp: (rows * h) / (plan.sequenceParallel ? plan.tp : 1),
    ps: plan.parameterServers > 0 ? Math.ceil(all / plan.parameterServers) + units.length : 0,
    // The all-to-all of a mixture of experts: every token copy's row, x k h (model/moe.ts).
    ep: rows * (model.moe?.topK ?? 0) * h,
  };
}

/** Floats of a tied embedding's copy on one tp rank: V/tp x h. */
export function tiedCopyFloats(model: ModelSpec, plan: Plan): number {
  return (model.vocabSize / plan.tp) * model.hiddenSize;
}

/** The pairs of ranks that hold a tied embedding's two copies (none unless the head keeps one). */
export function tiedPairs(model: ModelSpec, plan: Plan): number[][] {
  if (!headKeepsTiedCopy(model, plan)) return [];
  const out: number[][] = [];
  for (let r = 0; r < workerCount(plan); r++) {
    const c = coordsOf(plan, r);
    if (c.pp === 0) out.push([r, rankOf(plan, { ...c, pp: headStage(plan) })]);
  }
  return out;
}

/**
 * Groups and channels of a plan: tp, cp, data-parallel (with the gradient buckets), expert-parallel and world groups;
 * pipeline and parameter-server channels.
 */
export function fabricFor(model: ModelSpec, plan: Plan): FabricSpec {
  const cap = capacities(model, plan);
  const workers = workerCount(plan);
  const groups: GroupSpec[] = [
    ...uniqueGroups(plan, ["tp"]).map((m) => ({ name: groupName("tp", m), kind: "tp" as const, members: m, capacityFloats: cap.tp })),
    ...uniqueGroups(plan, ["cp"]).map((m) => ({ name: groupName("cp", m), kind: "cp" as const, members: m, capacityFloats: cap.cp })),
    // Every member of a data-parallel group is on the same pipeline stage and tp rank: one bucket
    // (bucket.ts) per member for the gradients of that stage's units.
    ...(plan.parameterServers > 0 ? [] : uniqueGroups(plan, ["dp", "cp"]).map((m) => ({
      name: groupName("dp", m), kind: "dp" as const, members: m, capacityFloats: cap.dp,
      bucketFloats: gradientBucket(stageUnits(model, plan, coordsOf(plan, m[0]!).pp).flat(), plan.tp, plan.zero).floats,
    }))),
  ];
  for (const m of uniqueGroups(plan, (r) => expertMembers(plan, r))) groups.push({ name: groupName("ep", m), kind: "ep", members: m, capacityFloats: cap.ep });
  // The experts' own data-parallel groups (edp) where ep < dp x cp, each with a bucket for their gradients.
  if (plan.ep > 1 && plan.parameterServers === 0) {
    for (const m of uniqueGroups(plan, (r) => expertDataMembers(plan, r))) {
      const c = coordsOf(plan, m[0]!);
      const experts = stageUnits(model, plan, c.pp, epRankOf(plan, c)).flat().filter((u) => u.kind === "experts");
      groups.push({
        name: groupName("edp", m), kind: "dp", members: m, capacityFloats: Math.max(...experts.map((u) => unitSlots(u, plan.tp).size)),
        bucketFloats: gradientBucket(experts, plan.tp, plan.zero).floats,
      });
    }
  }
  for (const pair of tiedPairs(model, plan)) {
    groups.push({ name: groupName("tied", pair), kind: "pp", members: pair, capacityFloats: tiedCopyFloats(model, plan) });
  }
  const all = Array.from({ length: workers + plan.parameterServers }, (_, r) => r);
  groups.push({ name: groupName("world", all), kind: "dp", members: all, capacityFloats: 16 });
  const channels: ChannelSpec[] = [];
  const slots = microBatchCount(plan) * plan.virtualStages + 1;
  if (plan.pp > 1) {
    const pairs = new Set<string>();
    for (let r = 0; r < workers; r++) {
      const c = coordsOf(plan, r);
      const next = rankOf(plan, { ...c, pp: (c.pp + 1) % plan.pp });
      // The last stage feeds the first only when chunks wrap round (interleaved); ZB-V's V turns on the last stage.
      if (c.pp === plan.pp - 1 && (plan.virtualStages === 1 || isVShape(plan.schedule))) continue;
      pairs.add(`${r},${next}`);
      pairs.add(`${next},${r}`);
    }
    for (const p of pairs) {
      const [from, to] = p.split(",").map(Number) as [number, number];
      channels.push({ from, to, kind: "pp", slots, capacityFloats: cap.pp });
    }
  }
  for (let s = 0; s < plan.parameterServers; s++) {
    for (let w = 0; w < workers; w++) {
      channels.push({ from: w, to: workers + s, kind: "dp", slots: 2, capacityFloats: cap.ps });
      channels.push({ from: workers + s, to: w, kind: "dp", slots: 2, capacityFloats: cap.ps });
    }
  }
  return { ranks: workers + plan.parameterServers, groups, channels };
}
