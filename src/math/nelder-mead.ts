/**
 * Nelder-Mead simplex minimisation (Nelder & Mead 1965, with the standard coefficients: reflection 1,
 * expansion 2, contraction 1/2, shrink 1/2; Lagarias et al. 1998). Derivative-free, which suits an
 * objective built from medians and max() inside the cost model. Deterministic. Pure.
 */
export interface MinimizeOptions {
  readonly step: number;
  readonly maxEvaluations: number;
  /** Stop when the simplex's objective values span less than this. */
  readonly tolerance: number;
}

export function minimize(f: (x: readonly number[]) => number, start: readonly number[], o: MinimizeOptions): { x: number[]; value: number; evaluations: number } {
  const n = start.length;
  let evaluations = 0;
  const evaluate = (x: number[]) => {
    evaluations++;
    return f(x);
  };
  let simplex: { x: number[]; v: number }[] = [{ x: [...start], v: evaluate([...start]) }];
  for (let i = 0; i < n; i++) {
    const x = [...start];
    x[i] = x[i]! + o.step;
    simplex.push({ x, v: evaluate(x) });
  }
  const combine = (a: number[], b: number[], t: number) => a.map((ai, i) => ai + t * (b[i]! - ai));
  while (evaluations < o.maxEvaluations) {
    simplex.sort((a, b) => a.v - b.v);
    const best = simplex[0]!;
    const worst = simplex[n]!;
    if (worst.v - best.v < o.tolerance) break;
    const centroid = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) centroid[j] = centroid[j]! + simplex[i]!.x[j]! / n;
    const reflected = combine(centroid, worst.x, -1);
    const vr = evaluate(reflected);
    if (vr < best.v) {
      const expanded = combine(centroid, worst.x, -2);
      const ve = evaluate(expanded);
      simplex[n] = ve < vr ? { x: expanded, v: ve } : { x: reflected, v: vr };
    } else if (vr < simplex[n - 1]!.v) {
      simplex[n] = { x: reflected, v: vr };
    } else {
      const outside = vr < worst.v;
      const contracted = combine(centroid, outside ? reflected : worst.x, 0.5);
      const vc = evaluate(contracted);
      if (vc < (outside ? vr : worst.v)) {
        simplex[n] = { x: contracted, v: vc };
      } else {
        simplex = simplex.map((p, i) => (i === 0 ? p : { x: combine(best.x, p.x, 0.5), v: evaluate(combine(best.x, p.x, 0.5)) }));
      }
    }
  }
  simplex.sort((a, b) => a.v - b.v);
  return { x: simplex[0]!.x, value: simplex[0]!.v, evaluations };
}
