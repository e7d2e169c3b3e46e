import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadGpu } from "../../src/cli/catalog.js";
import { attentionLengthFactor } from "../../src/planner/cost/attention-length.js";
import { FLASH_BACKWARD_RATIO, layerTimes } from "../../src/planner/cost/compute.js";
import { efficiencyGrid, gridEfficiency } from "../../src/planner/cost/gemm-grid.js";
import { InputError } from "../../src/spec/errors.js";
import { parseMeasuredGpu, PLATEAU_MIN_DIM } from "../../src/spec/measured.js";
import type { GpuSpec } from "../../src/spec/types.js";
import { planFor, shapeOf } from "../helpers.js";

interface LayerRow {
  readonly model: string; readonly tp: number; readonly tokens: number; readonly pass: string;
  readonly m: number; readonly k: number; readonly n: number; readonly seconds: number;
}
interface RawFile {
  gemmBf16: { points: number[][] };
  gemmLayers: { rows: LayerRow[] };
  attention: { rows: { kernel: string; causal: boolean; seqLen: number; forwardFlops: number; forwardSeconds: number; backwardSeconds: number }[] };
}

/** A built-in GPU with its measurement file, read both through the catalog and as raw JSON. */
function figures(name: string) {
  const gpu: GpuSpec = loadGpu(name);
  const raw = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "hardware", "measured", `${name}.json`), "utf8")) as RawFile;
  return { gpu, raw, measured: gpu.measured!, PEAK: gpu.peakFlopsPerSecond.bf16! };
}
const { raw, measured, PEAK } = figures("h100-sxm");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;

describe.each([["h100-sxm", "H100 80GB HBM3"], ["h200-sxm", "NVIDIA H200"]])("the measured figures of %s (models/hardware/measured)", (name, device) => {
  const { gpu, raw, measured, PEAK } = figures(name);

  it("are linked from the GPU file, whose memory bandwidth is the measured one and whose levels they agree with", () => {
    expect(measured.device).toContain(device);
    expect(gpu.efficiency.memoryBandwidth).toBeCloseTo(measured.streamBytesPerSecond! / gpu.hbmBytesPerSecond, 3);
    // matmulMax and attentionMax stay the published short-burst figures (the levels every GPU's prior has,
    // the GPU files' sources); the sustained measurements sit 6-16% under them, never over.
    const plateau = efficiencyGrid(measured.gemm16, PEAK).plateau;
    expect(plateau / gpu.efficiency.matmulMax).toBeGreaterThan(0.84);
    expect(plateau / gpu.efficiency.matmulMax).toBeLessThan(1);
    const a = measured.attention!;
    // forward plus backward FLOPs (the backward FLASH_BACKWARD_RATIO forwards) over their seconds, as attentionMax counts
    const attention = ((1 + FLASH_BACKWARD_RATIO) * a.unmaskedFlopsPerSecond[a.lengths.length - 1]!) / PEAK;
    expect(attention / gpu.efficiency.attentionMax).toBeGreaterThan(0.9);
    expect(attention / gpu.efficiency.attentionMax).toBeLessThan(1);
  });

  it("the plateau is the median of the raw points at 4096 and up in every dimension", () => {
    const flat = raw.gemmBf16.points
      .filter(([m, k, n]) => m! >= PLATEAU_MIN_DIM && k! >= PLATEAU_MIN_DIM && n! >= PLATEAU_MIN_DIM)
      .map(([m, k, n, s]) => (2 * m! * k! * n!) / s! / PEAK);
    expect(flat.length).toBeGreaterThan(50);
    expect(efficiencyGrid(measured.gemm16, PEAK).plateau).toBeCloseTo(median(flat), 12);
  });

  it("interpolating the grid predicts the separately measured layer GEMMs, and small ones better than a flat efficiency", () => {
    // gemmLayers: the exact QKV, projection and MLP products of Llama 3 8B/70B/405B and GPT-3 175B at tp 1-8,
    // forward, input- and weight-gradient layouts, timed in the same run but not part of the grid.
    const grid = efficiencyGrid(measured.gemm16, PEAK);
    const flatOverheadSeconds = gpu.efficiency.matmulOverheadSeconds; // the prior's fixed cost per GEMM (h100-sxm.json)
    const gridErrors: number[] = [];
    const flatErrors: number[] = [];
    const small = { grid: [] as number[], flat: [] as number[] };
    for (const r of raw.gemmLayers.rows) {
      const flops = 2 * r.m * r.k * r.n;
      const g = Math.abs(flops / (PEAK * gridEfficiency(grid, r.m, r.k, r.n)) / r.seconds - 1);
      const f = Math.abs((flops / (PEAK * grid.plateau) + flatOverheadSeconds) / r.seconds - 1);
      gridErrors.push(g);
      flatErrors.push(f);
      if (flops <= 5e10) { small.grid.push(g); small.flat.push(f); }
    }
    expect(gridErrors.length).toBe(576);
    expect(median(gridErrors)).toBeLessThan(0.04);
    expect(quantile(gridErrors, 0.9)).toBeLessThan(0.1);
    expect(Math.max(...gridErrors)).toBeLessThan(Math.max(...flatErrors));
    // Most of these products sit on the plateau, where both agree; the grid's shape tells on the small ones
    // (Llama 3 8B at tp 4-8: 12 products of 50 GFLOP or less; H100 median 3.4% against 9.2%, H200 7.2% against 10.7%).
    expect(small.grid.length).toBeGreaterThanOrEqual(10);
    expect(median(small.grid)).toBeLessThan(0.8 * median(small.flat));
  });

  it("the three layouts run alike, so the forward-layout grid serves the backward's GEMMs too", () => {
    const byPass = (pass: string) => median(raw.gemmLayers.rows.filter((r) => r.pass === pass).map((r) => (2 * r.m * r.k * r.n) / r.seconds / PEAK));
    expect(Math.abs(byPass("dgrad") / byPass("forward") - 1)).toBeLessThan(0.02);
    expect(Math.abs(byPass("wgrad") / byPass("forward") - 1)).toBeLessThan(0.02);
  });

  it("the causal attention curve is the cuDNN rows' rate over the unmasked rate at the longest length", () => {
    const rate = (causal: boolean, seqLen: number) => {
      const rows = raw.attention.rows.filter((r) => r.kernel === "cudnn" && r.causal === causal && r.seqLen === seqLen);
      return (3.5 * rows[0]!.forwardFlops) / median(rows.map((r) => r.forwardSeconds + r.backwardSeconds));
    };
    const top = rate(false, 32768);
    for (const seqLen of [512, 2048, 8192, 32768]) {
      expect(attentionLengthFactor(seqLen, 1, measured.attention)).toBeCloseTo(rate(true, seqLen) / top, 9);
    }
    expect(attentionLengthFactor(2048, 1, measured.attention)).toBeLessThan(0.8);
    expect(attentionLengthFactor(32768, 1, measured.attention)).toBeGreaterThan(0.9);
  });
});

describe("gridEfficiency", () => {
  const grid = efficiencyGrid(measured.gemm16, PEAK);
  const point = (m: number, k: number, n: number) => {
    const p = raw.gemmBf16.points.find(([a, b, c]) => a === m && b === k && c === n)!;
    return (2 * m * k * n) / p[3]! / PEAK;
  };

  it("is the measured efficiency at a grid point, and between two points' values halfway between them", () => {
    expect(gridEfficiency(grid, 2048, 1024, 512)).toBeCloseTo(point(2048, 1024, 512), 12);
    const mid = gridEfficiency(grid, 2048, 1024, Math.sqrt(512 * 1024));
    expect(mid).toBeCloseTo((point(2048, 1024, 512) + point(2048, 1024, 1024)) / 2, 12);
  });

  it("holds the time below the smallest dimension and the efficiency above the largest", () => {
    expect(gridEfficiency(grid, 128, 1024, 1024)).toBeCloseTo(point(256, 1024, 1024) / 2, 12);
    expect(gridEfficiency(grid, 1 << 17, 1024, 1024)).toBeCloseTo(point(32768, 1024, 1024), 12);
  });
});

describe("GEMMs on a GPU with a measured grid", () => {
  it("a tensor-parallel split slows a layer's GEMMs per FLOP about as much as the measured layer products say", () => {
    const h100 = shapeOf("dgx-h100", 8);
    // The weight-gradient pass is the layer's four linear GEMMs alone, at the forward's shapes.
    const modelled = (tp: number) => {
      const { model, plan } = planFor("llama3-8b", h100, { tp, seqLen: 4096, globalBatch: 8, microBatch: 1 });
      return layerTimes(model, h100.spec.gpu, plan).backwardWeightSeconds * tp;
    };
    const measuredSeconds = (tp: number) =>
      tp * raw.gemmLayers.rows
        .filter((r) => r.model === "llama3-8b" && r.tp === tp && r.tokens === 4096 && r.pass === "forward")
        .reduce((sum, r) => sum + r.seconds, 0);
    for (const tp of [2, 4, 8]) {
      const expected = measuredSeconds(tp) / measuredSeconds(1);
      // tp 8's widths 768, 1792 and 3584 lose more to tile and wave quantization than interpolating between
      // powers of two gives (their products run 10-13% under the interpolation): within 12%, not closer.
      expect(Math.abs(modelled(tp) / modelled(1) / expected - 1), `tp ${tp}`).toBeLessThan(0.12);
    }
    expect(modelled(8) / modelled(1)).toBeGreaterThan(1.03);
  });
});

describe("a GPU file's measured link", () => {
  it("a missing measurement file is an input error naming measured.file", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-measured-"));
    const file = join(dir, "my-h100.json");
    const own = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "hardware", "gpus", "h100-sxm.json"), "utf8")) as object;
    writeFileSync(file, JSON.stringify({ ...own, name: "my-h100", measured: { file: "missing.json" } }));
    expect(() => loadGpu(file)).toThrow(InputError);
    expect(() => loadGpu(file)).toThrow(/measured\.file.*no such file/);
    // the GPU file that names it is where the fix goes; a built-in name is no answer there
    expect(() => loadGpu(file)).toThrow(new RegExp(`^${file}: measured\\.file .*relative to this file`));
    expect(() => loadGpu(file)).not.toThrow(/built-in name/);
  });
});

describe("parseMeasuredGpu", () => {
  it("names a missing grid point", () => {
    const points = [[256, 128, 128, 1e-6], [256, 128, 256, 1e-6], [256, 256, 128, 1e-6]];
    const json = { device: { name: "X", cuda: "13", torch: "2" }, gemmBf16: { points } };
    expect(() => parseMeasuredGpu(json, "x.json", undefined)).toThrow(InputError);
    expect(() => parseMeasuredGpu(json, "x.json", undefined)).toThrow(/m 256, k 256, n 256/);
  });

  it("names a malformed point", () => {
    const json = { device: { name: "X", cuda: "13", torch: "2" }, gemmBf16: { points: [[256, 128, -1, 1e-6]] } };
    expect(() => parseMeasuredGpu(json, "x.json", undefined)).toThrow(/gemmBf16\.points\[0\]/);
  });
});
