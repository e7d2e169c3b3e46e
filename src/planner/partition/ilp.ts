import lpModule from "javascript-lp-solver";
import { solveByThreshold } from "./threshold.js";
import { headStage, type PipelineShape } from "../../spec/virtual-stages.js";
import { fitsCapacity, layerCounts, objectiveSeconds, stageBytes, stageSeconds, type PartitionProblem, type PartitionSolution, type StageCoefficients } from "./problem.js";

/** The part of javascript-lp-solver's JSON model format used here. */
interface Model {
  optimize: string;
  opType: "min" | "max";
  constraints: Record<string, { min?: number; max?: number; equal?: number }>;
  variables: Record<string, Record<string, number>>;
  binaries: Record<string, 1>;
  options: { tolerance: number; timeout?: number };
}
interface Solver {
  Solve(model: Model): { feasible: boolean; result: number; [name: string]: unknown };
}
// The package's types describe a CommonJS default export; under Node's ESM loader the default import is
// the solver itself. Accept either shape.
const solver = ((lpModule as unknown as { default?: Solver }).default ?? lpModule) as unknown as Solver;

/** One way to fill a stage: l layers, the fewest recomputed layers that fit, and what that costs. */
export interface Option {
  readonly layers: number;
  readonly recomputed: number;
  readonly seconds: number;
  /** The stage's term in the objective's sum. */
  readonly sumTerm: number;
}

/**
 * For a fixed l, recomputing more only adds time (and objective) while saving memory, so the best r is
 * the smallest that fits: 0, or past the one-layer transient the smallest r >= 1. Undefined when even
 * recomputing every layer does not fit.
 */
export function fewestRecomputed(p: PartitionProblem, c: StageCoefficients, l: number): number | undefined {
  if (fitsCapacity(p, stageBytes(c, l, 0))) return 0;
  if (!p.allowRecompute || c.perRecomputedLayerBytes >= 0) return undefined;
  const over = stageBytes(c, l, 1) - p.capacityBytes;
  let r = Math.min(l + 1, Math.max(1, 1 + Math.ceil(over / -c.perRecomputedLayerBytes)));
  while (r > 1 && fitsCapacity(p, stageBytes(c, l, r - 1))) r--; // guard the closed form against rounding
  while (r <= l && !fitsCapacity(p, stageBytes(c, l, r))) r++;
  return r <= l ? r : undefined;
}

function stageOptions(p: PartitionProblem, i: number): Option[] {
  const c = p.coefficients[i]!;
  const out: Option[] = [];
  for (const l of layerCounts(p, i)) {
    const r = fewestRecomputed(p, c, l);
    if (r === undefined) continue;
    const seconds = stageSeconds(c, l, r);
    out.push({ layers: l, recomputed: r, seconds, sumTerm: p.sumWeight * (seconds - p.weightGradFactor * c.perLayerWeightSeconds * l) });
  }
  return out;
}

/**
 * The stage-layout program (problem.ts), solved as a mixed-integer program with javascript-lp-solver in
 * an assignment form: a binary x_{i,k} picks option k (l layers, the fewest recomputed layers that fit)
 * for stage i, with sum_k x_{i,k} = 1, sum l_k x_{i,k} = L and T >= the chosen stage times. The program
 * is tightened with cuts that no optimum violates (tightenOptions), which leaves a few options per stage.
 */
/**
 * Time allowed to javascript-lp-solver's branch and bound on one program. Its search has no bound on
 * its running time; when it needs more, the exact threshold algorithm (threshold.ts) answers instead.
 */
export const SOLVER_TIMEOUT_MS = 300;

export function solvePartition(p: PartitionProblem, timeoutMs = SOLVER_TIMEOUT_MS): PartitionSolution | undefined {
  const all = Array.from({ length: p.stages }, (_, i) => stageOptions(p, i));
  if (all.some((o) => o.length === 0)) return undefined;
  const options = tightenOptions(p, all);
  if (options === undefined) return undefined;
  const started = Date.now();
  // The cuts often leave each stage a single option (29 of Llama 3 405B's 30 shortlisted programs): the
  // cuts keep every optimum, so that one layout is the optimum when its layers add up, and no layout exists
  // when they do not. The solver would only confirm it.
  if (options.every((o) => o.length === 1)) {
    const layersPerStage = options.map((o) => o[0]!.layers);
    if (layersPerStage.reduce((a, b) => a + b, 0) !== p.layers) return undefined;
    const recomputeLayersPerStage = options.map((o) => o[0]!.recomputed);
    return { layersPerStage, recomputeLayersPerStage, objectiveSeconds: objectiveSeconds(p, layersPerStage, recomputeLayersPerStage), solver: "cuts", solveMilliseconds: Date.now() - started };
  }
  const viaSolver = solveWithLp(p, options, timeoutMs);
  if (viaSolver !== "timeout") return viaSolver;
  const exact = solveByThreshold(p, options);
  return exact === undefined ? undefined : { ...exact, solver: "threshold", solveMilliseconds: Date.now() - started };
}

function solveWithLp(p: PartitionProblem, options: Option[][], timeoutMs: number): PartitionSolution | undefined | "timeout" {
  const started = Date.now();

  const constraints: Model["constraints"] = { layers: { equal: p.layers } };
  const variables: Model["variables"] = { T: { objective: p.maxWeight } };
  const binaries: Record<string, 1> = {};
  options.forEach((opts, i) => {
    constraints[`one${i}`] = { equal: 1 };
    constraints[`time${i}`] = { min: 0 };
    variables.T![`time${i}`] = 1;
    opts.forEach((o, k) => {
      const x = `x${i}_${k}`;
      variables[x] = { objective: o.sumTerm, layers: o.layers, [`one${i}`]: 1, [`time${i}`]: -o.seconds };
      binaries[x] = 1;
    });
  });
  const result = solver.Solve({ optimize: "objective", opType: "min", constraints, variables, binaries, options: { tolerance: 0, timeout: timeoutMs } });
  // a search cut short by the timeout may return a non-optimal layout: never trust it
  if (Date.now() - started >= timeoutMs) return "timeout";
  if (!result.feasible) return undefined;

  const layersPerStage: number[] = [];
  const recomputeLayersPerStage: number[] = [];
  options.forEach((opts, i) => {
    // the solver omits zero-valued variables; the chosen option is the one at (about) 1
    const chosen = opts.find((_, k) => Number(result[`x${i}_${k}`] ?? 0) > 0.5);
    if (chosen === undefined) throw new Error(`internal: the integer program chose no layout for stage ${i}`);
    layersPerStage.push(chosen.layers);
    recomputeLayersPerStage.push(chosen.recomputed);
  });
  if (layersPerStage.reduce((a, b) => a + b, 0) !== p.layers) throw new Error("internal: the integer program's layers do not add up");
  return { layersPerStage, recomputeLayersPerStage, objectiveSeconds: objectiveSeconds(p, layersPerStage, recomputeLayersPerStage), solver: "javascript-lp-solver", solveMilliseconds: Date.now() - started };
}

/** Most layers stage options allow within time `t` (options are sorted by layers; time grows with layers). */
function maxLayersWithin(opts: readonly Option[], t: number): number {
  let best = 0;
  for (const o of opts) if (o.seconds <= t) best = Math.max(best, o.layers);
  return best;
}

/**
 * Valid cuts. (1) S_min, the least possible sum term over all layouts (a knapsack by dynamic programming,
 * ignoring T), bounds the objective below by maxWeight*T + S_min. (2) A feasible layout (the greedy one
 * at the smallest T that can hold all layers) bounds it above by its objective U. So an optimum has
 * T <= T_cut = (U - S_min)/maxWeight: slower options go. (3) With every other stage at most at its
 * largest option within T_cut, stage i needs l_i >= L - sum_{j != i} maxLayers_j: smaller options go.
 * Returns undefined when no layout exists.
 */
function tightenOptions(p: PartitionProblem, all: Option[][]): Option[][] | undefined {
  const times = [...new Set(all.flatMap((o) => o.map((x) => x.seconds)))].sort((a, b) => a - b);
  const holds = (t: number) => all.every((o) => o.some((x) => x.seconds <= t)) && all.reduce((acc, o) => acc + maxLayersWithin(o, t), 0) >= p.layers;
  // holds(t) only turns true as t grows (each stage may use more options), so the smallest t that holds
  // is found by bisection: a few dozen checks instead of one per distinct time (thousands on 64 stages).
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (holds(times[mid]!)) hi = mid;
    else lo = mid + 1;
  }
  if (lo === times.length) return undefined;
  const tMin = times[lo]!;
  let cut = Infinity;
  if (p.maxWeight > 0) {
    const upper = greedyObjective(p, all, tMin);
    const sumMin = minimumSumTerm(p, all);
    if (upper !== undefined && sumMin !== undefined) cut = (upper - sumMin) / p.maxWeight;
  }
  const slack = (t: number) => t * (1 + 1e-12) + 1e-15;
  const within = all.map((o) => o.filter((x) => x.seconds <= slack(cut)));
  const maxima = within.map((o) => maxLayersWithin(o, Infinity));
  const total = maxima.reduce((a, b) => a + b, 0);
  return within.map((o, i) => o.filter((x) => x.layers >= p.layers - (total - maxima[i]!)));
}

/** Objective of a feasible layout at time t: each stage at its most layers within t, then the costliest extra layers removed. */
function greedyObjective(p: PartitionProblem, all: Option[][], t: number): number | undefined {
  const pick = all.map((o) => o.filter((x) => x.seconds <= t));
  const index = pick.map((o) => o.length - 1);
  let total = pick.reduce((acc, o, i) => acc + o[index[i]!]!.layers, 0);
  while (total > p.layers) {
    let best = -1;
    let saving = -Infinity;
    index.forEach((k, i) => {
      if (k === 0) return;
      const s = pick[i]![k]!.sumTerm - pick[i]![k - 1]!.sumTerm;
      if (s > saving) [best, saving] = [i, s];
    });
    if (best < 0) return undefined;
    total -= pick[best]![index[best]!]!.layers - pick[best]![index[best]! - 1]!.layers;
    index[best]!--;
  }
  if (total !== p.layers) return undefined;
  let max = 0;
  let sum = 0;
  index.forEach((k, i) => {
    max = Math.max(max, pick[i]![k]!.seconds);
    sum += pick[i]![k]!.sumTerm;
  });
  return p.maxWeight * max + sum;
}

/** The least sum of the stages' sum terms over layouts adding up to L (dynamic programming over layers used). */
function minimumSumTerm(p: PartitionProblem, all: Option[][]): number | undefined {
  // best[u]: the least sum over the stages so far using u layers (Infinity: no such layout)
  let best = new Float64Array(p.layers + 1).fill(Infinity);
  let next = new Float64Array(p.layers + 1);
  best[0] = 0;
  // Layers the stages after i need at least: a state that leaves fewer can never reach L, so it is not kept.
  const after = new Array<number>(all.length + 1).fill(0);
  for (let i = all.length - 1; i >= 0; i--) after[i] = after[i + 1]! + Math.min(...all[i]!.map((o) => o.layers));
  for (let i = 0; i < all.length; i++) {
    const opts = all[i]!;
    const limit = p.layers - after[i + 1]!;
    next.fill(Infinity);
    for (let used = 0; used <= limit; used++) {
      const value = best[used]!;
      if (value === Infinity) continue;
      for (const o of opts) {
        const u = used + o.layers;
        if (u > limit) continue;
        const v = value + o.sumTerm;
        if (v < next[u]!) next[u] = v;
      }
    }
    [best, next] = [next, best];
  }
  const least = best[p.layers]!;
  return least === Infinity ? undefined : least;
}

/**
 * Layers as even as multiples of v allow, the remainder given to the middle stages first (the first and
 * last stages also carry the embedding and the output layer). When the layers fall one or two short of a
 * multiple of v, the first (then the stage holding the output layer: the last, or ZB-V's first) holds one
 * less (layerCounts).
 */
export function balancedLayers(layers: number, shape: PipelineShape): number[] {
  const { pp: stages, virtualStages: v } = shape;
  const short = (v - (layers % v)) % v;
  const units = (layers + short) / v;
  const base = Math.floor(units / stages);
  const out = new Array<number>(stages).fill(base * v);
  if (short >= 1) out[0]! -= 1;
  if (short >= 2) out[headStage(shape)]! -= 1;
  let extra = units - base * stages;
  const order = Array.from({ length: stages }, (_, i) => i).sort((a, b) => Math.abs(a - (stages - 1) / 2) - Math.abs(b - (stages - 1) / 2));
  for (const i of order) {
    if (extra === 0) break;
    out[i]! += v;
    extra--;
  }
  return out;
}
