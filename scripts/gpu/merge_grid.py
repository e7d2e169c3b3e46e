#!/usr/bin/env python3
"""Merge a second measurement of the bf16 GEMM grid into a measured GPU file, point by point.

One run of measure.py's grid section keeps each point's median over its passes; two runs on different
days (different machines of the same kind, clocks and temperature) differ by a few percent at most
points and by up to 10-20% at some. The merged file keeps, per point, the mean of the two runs' medians,
and as its spread the largest of the two runs' own spreads and the gap between the runs (max/min - 1),
so a point the runs disagree on is marked as such. The second run is listed under laterRuns.

Usage: python3 scripts/gpu/merge_grid.py --base models/hardware/measured/h100-sxm.json \
           --other RUN.json --out models/hardware/measured/h100-sxm.json
(RUN.json: the output of `measure.py --skip memory,attention,layers,fp8,alignment` on a copy of the base.)
"""
import argparse
import json
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--other", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.base) as fh:
        base = json.load(fh)
    with open(args.other) as fh:
        other = json.load(fh)
    a, b = base["gemmBf16"]["points"], other["gemmBf16"]["points"]
    if [p[:3] for p in a] != [q[:3] for q in b]:
        raise SystemExit("the two grids do not have the same shapes")
    merged = []
    for p, q in zip(a, b):
        gap = max(p[3], q[3]) / min(p[3], q[3]) - 1
        merged.append([p[0], p[1], p[2], (p[3] + q[3]) / 2, round(max(p[4], q[4], gap), 4)])
    base["gemmBf16"]["points"] = merged
    base["gemmBf16"]["runs"] = [base["measuredAt"], other["laterRuns"][-1]["measuredAt"]]
    base["gemmBf16"]["merge"] = ("mean of the two runs' per-point medians (scripts/gpu/merge_grid.py); spread: the largest of "
                                 "each run's own max/min - 1 over its passes and the gap between the runs")
    later = other["laterRuns"][-1]
    if later not in base.setdefault("laterRuns", []):
        base["laterRuns"].append(later)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(base, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
