import { fitsCapacity, layerCounts, objectiveSeconds, stageBytes, type PartitionProblem, type PartitionSolution } from "./problem.js";

/**
 * Every layout and recompute count, for checking the integer program on small instances: compositions
 * of the layers into stages (each stage's layerCounts) times every r_i in [0, l_i]. Exponential: tests only.
 */
export function solveExhaustively(p: PartitionProblem): PartitionSolution | undefined {
  let best: PartitionSolution | undefined;
  const counts = Array.from({ length: p.stages }, (_, i) => layerCounts(p, i));
  const layers = new Array<number>(p.stages).fill(0);
  const recomputed = new Array<number>(p.stages).fill(0);

  const chooseRecompute = (i: number) => {
    if (i === p.stages) {
      const value = objectiveSeconds(p, layers, recomputed);
      if (best === undefined || value < best.objectiveSeconds - 1e-12) {
        best = { layersPerStage: [...layers], recomputeLayersPerStage: [...recomputed], objectiveSeconds: value };
      }
      return;
    }
    const maxR = p.allowRecompute ? layers[i]! : 0;
    for (let r = 0; r <= maxR; r++) {
      if (!fitsCapacity(p, stageBytes(p.coefficients[i]!, layers[i]!, r))) continue;
      recomputed[i] = r;
      chooseRecompute(i + 1);
    }
    recomputed[i] = 0;
  };

  const chooseLayers = (i: number, left: number) => {
    if (i === p.stages - 1) {
      if (!counts[i]!.includes(left)) return;
      layers[i] = left;
      chooseRecompute(0);
      return;
    }
    for (const l of counts[i]!) {
      if (l >= left) break;
      layers[i] = l;
      chooseLayers(i + 1, left - l);
    }
  };
  chooseLayers(0, p.layers);
  return best;
}
