import type { GemmGrid } from "../../spec/types.js";

/**
 * A GPU's measured GEMM grid (models/hardware/measured, scripts/gpu/measure.py) as efficiencies: the
 * achieved fraction of a peak at each grid point, interpolated between points and taken relative to the
 * grid's plateau, so that the GPU's `matmulMax` (a large product's published efficiency, calibrated) keeps
 * setting the level, as for every other GPU, and the grid sets the shape: small and thin products slower,
 * as measured, with no separate fixed cost.
 */
export interface EfficiencyGrid {
  readonly log2M: readonly number[];
  readonly log2K: readonly number[];
  readonly log2N: readonly number[];
  readonly efficiency: Float64Array;
  /** The grid's plateau (GemmGrid.plateauFlopsPerSecond) as an efficiency. */
  readonly plateau: number;
  /** Efficiencies already interpolated, by shape: a plan search asks for the same few products again and again. */
  readonly memo: Map<string, number>;
}

/** Shapes memoised per grid before the memo starts over (a bound on memory, far above what a search asks). */
const MEMO_LIMIT = 1 << 16;

const cache = new WeakMap<GemmGrid, Map<number, EfficiencyGrid>>();

/** The grid at `peakFlopsPerSecond`, built once per grid and peak. */
export function efficiencyGrid(grid: GemmGrid, peakFlopsPerSecond: number): EfficiencyGrid {
  let byPeak = cache.get(grid);
  if (byPeak === undefined) cache.set(grid, (byPeak = new Map()));
  let out = byPeak.get(peakFlopsPerSecond);
  if (out === undefined) byPeak.set(peakFlopsPerSecond, (out = build(grid, peakFlopsPerSecond)));
  return out;
}

function build(grid: GemmGrid, peak: number): EfficiencyGrid {
  const efficiency = new Float64Array(grid.seconds.length);
  let idx = 0;
  for (const m of grid.m) {
    for (const k of grid.k) {
      for (const n of grid.n) {
        efficiency[idx] = (2 * m * k * n) / grid.seconds[idx]! / peak;
        idx++;
      }
    }
  }
  const log2 = (axis: readonly number[]) => axis.map(Math.log2);
  return { log2M: log2(grid.m), log2K: log2(grid.k), log2N: log2(grid.n), efficiency, plateau: grid.plateauFlopsPerSecond / peak, memo: new Map() };
}

/** Lower index and weight of the upper neighbour of x on a sorted axis, x clamped to its ends. */
export function bracket(axis: readonly number[], x: number): [number, number] {
  const last = axis.length - 1;
  if (last === 0 || x <= axis[0]!) return [0, 0];
  if (x >= axis[last]!) return [last - 1, 1];
  let i = 0;
  while (x > axis[i + 1]!) i++;
  return [i, (x - axis[i]!) / (axis[i + 1]! - axis[i]!)];
}

/**
 * Efficiency (fraction of the grid's peak) of an m x k x n product: trilinear in log2 of each dimension
 * between grid points. Past the largest value of a dimension the efficiency is held (the product is
 * larger and as efficient); below the smallest the time is held (the kernel's tiles are no emptier in
 * time for holding less work), so the efficiency falls in proportion to the dimension.
 */
export function gridEfficiency(g: EfficiencyGrid, m: number, k: number, n: number): number {
  const key = `${m} ${k} ${n}`;
  let e = g.memo.get(key);
  if (e === undefined) {
    if (g.memo.size >= MEMO_LIMIT) g.memo.clear();
    g.memo.set(key, (e = interpolate(g, m, k, n)));
  }
  return e;
}

function interpolate(g: EfficiencyGrid, m: number, k: number, n: number): number {
  const [i, ti] = bracket(g.log2M, Math.log2(m));
  const [j, tj] = bracket(g.log2K, Math.log2(k));
  const [l, tl] = bracket(g.log2N, Math.log2(n));
  const nk = g.log2K.length;
  const nn = g.log2N.length;
  let e = 0;
  for (let a = 0; a < 2; a++) {
    const wa = a === 0 ? 1 - ti : ti;
    if (wa === 0) continue;
    for (let b = 0; b < 2; b++) {
      const wb = b === 0 ? 1 - tj : tj;
      if (wb === 0) continue;
      for (let c = 0; c < 2; c++) {
        const wc = c === 0 ? 1 - tl : tl;
        if (wc === 0) continue;
        e += wa * wb * wc * g.efficiency[((i + a) * nk + (j + b)) * nn + (l + c)]!;
      }
    }
  }
  return e * below(g.log2M, m) * below(g.log2K, k) * below(g.log2N, n);
}

/** x / the axis's smallest value when x is below it, else 1. */
function below(log2Axis: readonly number[], x: number): number {
  const min = 2 ** log2Axis[0]!;
  return x < min ? x / min : 1;
}
