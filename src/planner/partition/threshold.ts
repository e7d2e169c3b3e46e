import { objectiveSeconds, type PartitionProblem, type PartitionSolution } from "./problem.js";
import type { Option } from "./ilp.js";

/**
 * An exact algorithm for the same program, used when the MILP solver runs out of time: the optimum's
 * T equals some option's stage time, and for a fixed T the rest is a knapsack over stages (the least sum
 * term with the layers adding up to L, using options no slower than T), solved by dynamic programming.
 * T values are tried in increasing order until maxWeight*T plus the least possible sum term cannot beat
 * the best found. Options per stage come from ilp.ts (fewest recomputed layers that fit, per layer count).
 */
export function solveByThreshold(p: PartitionProblem, options: readonly Option[][]): PartitionSolution | undefined {
  const times = p.maxWeight > 0 ? [...new Set(options.flatMap((o) => o.map((x) => x.seconds)))].sort((a, b) => a - b) : [Infinity];
  const sumMin = knapsack(options, p.layers, Infinity)?.value;
  if (sumMin === undefined) return undefined;
  let best: { t: number; value: number } | undefined;
  for (const t of times) {
    if (best !== undefined && p.maxWeight * t + sumMin >= best.value) break;
    const k = knapsack(options, p.layers, t);
    if (k === undefined) continue;
    const value = (p.maxWeight > 0 ? p.maxWeight * t : 0) + k.value;
    if (best === undefined || value < best.value) best = { t, value };
  }
  if (best === undefined) return undefined;
  const choice = knapsack(options, p.layers, best.t)!.choice;
  const layersPerStage = choice.map((o) => o.layers);
  const recomputeLayersPerStage = choice.map((o) => o.recomputed);
  return { layersPerStage, recomputeLayersPerStage, objectiveSeconds: objectiveSeconds(p, layersPerStage, recomputeLayersPerStage) };
}

/** Least total sum term over stages holding exactly `units` layers, using options no slower than `t`. */
function knapsack(options: readonly Option[][], units: number, t: number): { value: number; choice: Option[] } | undefined {
  const stages = options.length;
  let cost = new Float64Array(units + 1).fill(Infinity);
  cost[0] = 0;
  const picks: Int32Array[] = [];
  for (let i = 0; i < stages; i++) {
    const next = new Float64Array(units + 1).fill(Infinity);
    const pick = new Int32Array(units + 1).fill(-1);
    const opts = options[i]!;
    for (let u = 0; u <= units; u++) {
      const base = cost[u]!;
      if (base === Infinity) continue;
      for (let k = 0; k < opts.length; k++) {
        const o = opts[k]!;
        if (o.seconds > t) continue;
        const w = u + o.layers;
        if (w > units) continue;
        const value = base + o.sumTerm;
        if (value < next[w]!) {
          next[w] = value;
          pick[w] = k;
        }
      }
    }
    picks.push(pick);
    cost = next;
  }
  if (cost[units] === Infinity) return undefined;
  const choice: Option[] = new Array<Option>(stages);
  for (let i = stages - 1, u = units; i >= 0; i--) {
    const o = options[i]![picks[i]![u]!]!;
    choice[i] = o;
    u -= o.layers;
  }
  return { value: cost[units]!, choice };
}
