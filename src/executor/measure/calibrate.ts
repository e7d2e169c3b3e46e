import { cpus } from "node:os";
import type { ModelSpec, Plan } from "../../spec/types.js";
import type { ProbeResult } from "../comm/probe.js";
import type { FabricSpec } from "../comm/fabric.js";
import { runReference } from "../execute.js";
import { loadBackend, type BackendChoice } from "../run/backend.js";
import { launch } from "../run/launch.js";
import { matmulSeconds } from "./matmul.js";
import { predict, profileCluster, profileGpu, type DeviceProfile } from "./profile.js";

/**
 * `meshplan calibrate`: measures this machine as the executor uses it and fits the cost model's two
 * free efficiency constants (design brief section 4: "a roofline plus a fitted efficiency curve whose
 * constants are measured and recorded"). Measured: float32 matmul by size on one rank (the roofline's
 * peak), one thread's memcpy, the shared-memory all-reduce between two ranks (alpha-beta). Fitted: the
 * fixed cost per op and the element-wise rate, by a grid search that makes the cost model's step time
 * match single-rank training steps of small GPTs (not the plans later checked against it).
 */
export const MATMUL_SIZES = [16, 32, 64, 128, 256] as const;

export function medianOf(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

export function memcpyBytesPerSecond(bytes = 64 * 2 ** 20, repeats = 9): number {
  const src = new Uint8Array(bytes).fill(7);
  const dst = new Uint8Array(bytes);
  dst.set(src);
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    dst.set(src);
    times.push((performance.now() - t0) / 1e3);
  }
  return bytes / medianOf(times);
}

/** Two ranks all-reducing n floats, `repeat` times each size: median seconds per size. */
export async function collectiveSeconds(sizes: readonly number[], repeat: number, timeoutSeconds: number): Promise<number[]> {
  const fabric: FabricSpec = { ranks: 2, groups: [{ name: "pair", kind: "dp", members: [0, 1], capacityFloats: Math.max(...sizes) }], channels: [] };
  const script = sizes.map((n) => ({ op: "all-reduce" as const, group: "pair", n }));
  const payload = { script, repeat, keepOutputs: false };
  const res = (await launch({ fabric, timeoutSeconds, ranks: [{ program: "probe", payload }, { program: "probe", payload }] })) as ProbeResult[];
  return sizes.map((_, i) => Math.max(res[0]!.seconds[i]!, res[1]!.seconds[i]!));
}

/** Least squares y = a + b x. */
export function lineFit(xs: readonly number[], ys: readonly number[]): { a: number; b: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  xs.forEach((x, i) => {
    sxy += (x - mx) * (ys[i]! - my);
    sxx += (x - mx) ** 2;
  });
  const b = sxx === 0 ? 0 : sxy / sxx;
  return { a: my - b * mx, b };
}

/** Small GPTs the constants are fitted to (one rank, global batch 2, micro-batch 1). */
export function fitShapes(base: ModelSpec): { shape: string; model: ModelSpec; plan: Plan }[] {
  const shapes: [number, number, number][] = [[64, 32, 2], [128, 32, 2], [64, 64, 4]];
  return shapes.map(([h, s, layers]) => {
    const model: ModelSpec = { ...base, name: `fit-${h}x${s}x${layers}`, hiddenSize: h, headDim: h / base.attentionHeads, ffnHiddenSize: 4 * h, seqLen: s, layers };
    const plan: Plan = {
      dp: 1, tp: 1, pp: 1, cp: 1, ep: 1, sequenceParallel: false, virtualStages: 1, microBatch: 1, globalBatch: 2, seqLen: s,
      schedule: "1f1b", zero: 0, recompute: "none", precision: "bf16", layersPerStage: [layers], recomputeLayersPerStage: [0],
      parameterServers: 0, asynchronous: false, staleness: 0, flashAttention: false, fp32Gradients: true,
    };
    return { shape: `h${h} s${s} L${layers}`, model, plan };
  });
}

/** Log-spaced grid search of the two constants minimising the squared log error of the predicted step times. */
export function fitConstants(base: Omit<DeviceProfile, "opOverheadSeconds" | "elementwiseBytesPerSecond" | "fit">, runs: { shape: string; model: ModelSpec; plan: Plan; measuredSeconds: number }[]): DeviceProfile {
  let best = { err: Infinity, overhead: 1e-5, bw: 1e9 };
  const draft = { ...base, opOverheadSeconds: 1e-5, elementwiseBytesPerSecond: 1e9, fit: [] } as DeviceProfile;
  for (let i = 0; i <= 60; i++) {
    const overhead = 10 ** (-7 + (4 * i) / 60);
    for (let j = 0; j <= 60; j++) {
      const bw = 10 ** (7 + (5 * j) / 60);
      const cluster = profileCluster(draft, profileGpu(draft, overhead, bw));
      let err = 0;
      for (const r of runs) err += Math.log(predict(r.model, { spec: cluster, gpus: 1, gpusPerNode: 1024 }, r.plan).time.stepSeconds / r.measuredSeconds) ** 2;
      if (err < best.err) best = { err, overhead, bw };
    }
  }
  const profile: DeviceProfile = { ...base, opOverheadSeconds: best.overhead, elementwiseBytesPerSecond: best.bw, fit: [] };
  const cluster = profileCluster(profile);
  const fit = runs.map((r) => ({ shape: r.shape, measuredSeconds: r.measuredSeconds, fittedSeconds: predict(r.model, { spec: cluster, gpus: 1, gpusPerNode: 1024 }, r.plan).time.stepSeconds }));
  return { ...profile, fit };
}

export async function calibrate(o: { readonly backend: BackendChoice; readonly base: ModelSpec; readonly onProgress?: (what: string) => void }): Promise<DeviceProfile> {
  const say = o.onProgress ?? (() => {});
  const loaded = await loadBackend(o.backend, 1);
  say("matrix multiplies");
  const matmul = MATMUL_SIZES.map((n) => {
    const seconds = matmulSeconds(loaded.tf, n, n >= 256 ? 9 : 31);
    return { n, seconds, flopsPerSecond: (2 * n ** 3) / seconds };
  });
  say("memory copies");
  const memcpy = memcpyBytesPerSecond();
  say("collectives");
  const sizes = [256, 1024, 16384, 262144, 1048576];
  const times = await collectiveSeconds(sizes, 21, 60);
  const line = lineFit(sizes.map((n) => 4 * n), times);
  const base = {
    version: 1 as const,
    measuredAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? "unknown", node: process.version, platform: process.platform },
    backend: loaded.backend,
    matmul,
    peakFlopsPerSecond: Math.max(...matmul.map((m) => m.flopsPerSecond)),
    memcpyBytesPerSecond: memcpy,
    collectiveBytesPerSecond: line.b > 0 ? 1 / line.b : memcpy,
    collectiveLatencySeconds: Math.max(line.a / 2, 1e-7),
  };
  const runs = [];
  for (const s of fitShapes(o.base)) {
    say(`training steps (${s.shape})`);
    const ref = await runReference({ model: s.model, plan: s.plan, steps: 6, backend: o.backend });
    runs.push({ ...s, measuredSeconds: medianOf(ref.result.steps.slice(1).map((x) => x.seconds)) });
  }
  say("fitting");
  return fitConstants(base, runs);
}
