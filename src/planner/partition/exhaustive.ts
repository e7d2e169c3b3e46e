import { fitsCapacity, objectiveSeconds, stageBytes, type PartitionProblem, type PartitionSolution } from "./problem.js";

/**
 * Every layout and recompute count, for checking the integer program on small instances: compositions
 * of the layers into stages (multiples of v, each >= v) times every r_i in [0, l_i]. Exponential: tests only.
 */
export function solveExhaustively(p: PartitionProblem): PartitionSolution | undefined {
  let best: PartitionSolution | undefined;
  const v = p.layerMultiple;
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
      if (left < v || left % v !== 0) return;
      layers[i] = left;
      chooseRecompute(0);
      return;
    }
    for (let l = v; l <= left - v * (p.stages - 1 - i); l += v) {
      layers[i] = l;
      chooseLayers(i + 1, left - l);
    }
  };
  chooseLayers(0, p.layers);
  return best;
}
