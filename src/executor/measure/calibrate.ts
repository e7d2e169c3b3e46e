import { cpus } from "node:os";
import type { ModelSpec, Plan } from "../../spec/types.js";
import type { ProbeResult } from "../comm/probe.js";
import type { FabricSpec } from "../comm/fabric.js";
import { execute, runReference } from "../execute.js";
import { loadBackend, type BackendChoice } from "../run/backend.js";
import { launch } from "../run/launch.js";
import { countKernels, kernelOverheadSeconds, optimizerBytesPerSecond } from "./kernels.js";
import { matmulSeconds } from "./matmul.js";
import { syncWaits } from "./segments.js";
import type { StepRecord } from "../run/job.js";
import { predict, profileCluster, type DeviceProfile, type PassSpread } from "./profile.js";
import { lineFit, mean, pooledLogSd, upperMedian } from "./stats.js";

/**
 * `meshplan calibrate`: measures this machine as the executor uses it and sets the cost model's two
 * efficiency constants (design brief section 4: "a roofline plus a fitted efficiency curve whose
 * constants are measured and recorded"). Measured: float32 matmul by size on one rank (the roofline's
 * peak), one thread's memcpy, the shared-memory all-reduce between two ranks (bandwidth) and a ping-pong
 * (latency), one kernel's dispatch cost and the kernels per training step, which give the cost model's
 * fixed cost per GEMM. Fitted: the element-wise rate alone, by a grid search that makes the cost model's
 * step time match single-rank training steps of small GPTs (not the plans later checked against it).
 * Also measured: how much slower one rank computes while every core runs one (DeviceProfile.concurrency).
 */
export const MATMUL_SIZES = [16, 32, 64, 128, 256] as const;

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
  return bytes / upperMedian(times);
}

/**
 * Two ranks all-reducing n floats, `repeat` times each size: median seconds per size. The form tensor and
 * context parallel use (the tensor's data copied into the slot once, reduced in place, read in place):
 * their per-layer traffic is most of what crosses the fabric; the data-parallel gradients, reduced in
 * place in their bucket, run about twice as fast (src/executor/README.md, "Speed").
 */
export async function collectiveSeconds(sizes: readonly number[], repeat: number, timeoutSeconds: number): Promise<number[]> {
  const fabric: FabricSpec = { ranks: 2, groups: [{ name: "pair", kind: "dp", members: [0, 1], capacityFloats: Math.max(...sizes) }], channels: [] };
  const script = sizes.map((n) => ({ op: "all-reduce-view" as const, group: "pair", n }));
  const payload = { script, repeat, keepOutputs: false };
  const res = (await launch({ fabric, timeoutSeconds, ranks: [{ program: "probe", payload }, { program: "probe", payload }] })) as ProbeResult[];
  return sizes.map((_, i) => Math.max(res[0]!.seconds[i]!, res[1]!.seconds[i]!));
}

/**
 * One-way latency of a shared-memory message between two ranks: half the median round trip of a
 * ping-pong of 16 floats (a send and the reply's receive). Every collective step and every pipeline
 * message waits for the same wake-up of a blocked rank, so this is the fabric's latency per step.
 */
export async function messageLatencySeconds(repeat: number, timeoutSeconds: number): Promise<number> {
  const fabric: FabricSpec = {
    ranks: 2, groups: [],
    channels: [{ from: 0, to: 1, kind: "pp", slots: 2, capacityFloats: 16 }, { from: 1, to: 0, kind: "pp", slots: 2, capacityFloats: 16 }],
  };
  // Unrolled (the probe repeats each op before the next): round r is ops 2r (send) and 2r + 1 (receive).
  const rounds = Array.from({ length: repeat }, () => null);
  const ping = { script: rounds.flatMap(() => [{ op: "send" as const, to: 1, tag: 1, n: 16 }, { op: "recv" as const, from: 1, tag: 2 }]), keepOutputs: false };
  const pong = { script: rounds.flatMap(() => [{ op: "recv" as const, from: 0, tag: 1 }, { op: "send" as const, to: 0, tag: 2, n: 16 }]), keepOutputs: false };
  const res = (await launch({ fabric, timeoutSeconds, ranks: [{ program: "probe", payload: ping }, { program: "probe", payload: pong }] })) as ProbeResult[];
  const s = res[0]!.seconds;
  // The first rounds pay for warm-up (JIT, first wake-ups); the median of the rest.
  return upperMedian(rounds.map((_, r) => s[2 * r]! + s[2 * r + 1]!).slice(Math.min(10, repeat - 1))) / 2;
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

type FitRun = { shape: string; model: ModelSpec; plan: Plan; measuredSeconds: number; kernels?: number };

function stepSeconds(base: FitBase, overhead: number, bw: number, r: FitRun): number {
  const draft = { ...base, opOverheadSeconds: overhead, elementwiseBytesPerSecond: bw, fit: [] } as DeviceProfile;
  return predict(r.model, { spec: profileCluster(draft), gpus: 1, gpusPerNode: 1024 }, r.plan).time.stepSeconds;
}

type FitBase = Omit<DeviceProfile, "opOverheadSeconds" | "elementwiseBytesPerSecond" | "fit">;

/**
 * The cost model's fixed cost per GEMM, from measurements only: the executor runs `kernels` TensorFlow.js
 * kernels per step, each paying `kernelOverheadSeconds`, where the cost model charges its per-GEMM overhead
 * G times (G: how much the predicted step grows per second of that overhead). The median over the shapes.
 */
export function overheadPerGemm(base: FitBase, kernelOverhead: number, runs: readonly FitRun[]): number {
  const perShape = runs.map((r) => {
    const gemms = stepSeconds(base, 1, 1e9, r) - stepSeconds(base, 0, 1e9, r);
    return (kernelOverhead * r.kernels!) / gemms;
  });
  return upperMedian(perShape);
}

/**
 * Given the per-GEMM overhead as calibrate measures it (overheadPerGemm), the element-wise rate by a
 * log-spaced grid search minimising the squared log error of the predicted step times. (Fitting the
 * overhead too was ill-conditioned: the same three steps fit many overheads, the noise decided which,
 * and the split between the two is what a plan's split changes.)
 */
export function fitConstants(base: FitBase, runs: FitRun[], overhead: number): DeviceProfile {
  let best = { err: Infinity, bw: 1e9 };
  for (let j = 0; j <= 120; j++) {
    const bw = 10 ** (7 + (5 * j) / 120);
    let err = 0;
    for (const r of runs) err += Math.log(stepSeconds(base, overhead, bw, r) / r.measuredSeconds) ** 2;
    if (err < best.err) best = { err, bw };
  }
  const fit = runs.map((r) => ({ shape: r.shape, measuredSeconds: r.measuredSeconds, fittedSeconds: stepSeconds(base, overhead, best.bw, r) }));
  return { ...base, opOverheadSeconds: overhead, elementwiseBytesPerSecond: best.bw, fit };
}

export interface CalibrateOptions {
  readonly backend: BackendChoice;
  readonly base: ModelSpec;
  readonly onProgress?: (what: string) => void;
}

export async function calibrate(o: CalibrateOptions): Promise<DeviceProfile> {
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
  const latency = await messageLatencySeconds(201, 60);
  const base = {
    version: 1 as const,
    measuredAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? "unknown", node: process.version, platform: process.platform },
    backend: loaded.backend,
    matmul,
    peakFlopsPerSecond: Math.max(...matmul.map((m) => m.flopsPerSecond)),
    memcpyBytesPerSecond: memcpy,
    collectiveBytesPerSecond: line.b > 0 ? 1 / line.b : memcpy,
    // The alpha-beta line's intercept is too noisy at these sizes to give the latency; the ping-pong does.
    collectiveLatencySeconds: latency,
  };
  say("kernel dispatch and the optimizer");
  const kernelOverhead = kernelOverheadSeconds(loaded.tf);
  const optimizerRate = optimizerBytesPerSecond(loaded.tf);
  const runs: FitRun[] = [];
  for (const s of fitShapes(o.base)) {
    say(`training steps (${s.shape})`);
    const kernels = await countKernels(loaded.tf, () => runReference({ model: s.model, plan: s.plan, steps: 1, backend: o.backend }));
    const ref = await runReference({ model: s.model, plan: s.plan, steps: 10, backend: o.backend });
    runs.push({ ...s, kernels, measuredSeconds: upperMedian(ref.result.steps.slice(1).map((x) => x.seconds)) });
  }
  say("fitting");
  const measured = {
    ...base, kernelOverheadSeconds: kernelOverhead, optimizerBytesPerSecond: optimizerRate,
    kernelsPerStep: runs.map((r) => ({ shape: r.shape, kernels: r.kernels! })),
  };
  const fitted = fitConstants(measured, runs, overheadPerGemm(measured, kernelOverhead, runs));
  const cores = cpus().length;
  if (cores < 2) return fitted;
  // The largest fit shape, in a worker thread as execute runs ranks: alone, then one copy per core at once.
  const probe = fitShapes(o.base).at(-1)!;
  // The copies start when their workers are up, not together: 30 steps each, and only the middle third
  // is timed, when all of them are surely running.
  const stepOf = async () => {
    const ex = await execute({ model: probe.model, plan: probe.plan, steps: 30, backend: o.backend, reference: false });
    return upperMedian(ex.results[0]!.steps.slice(10, 20).map((x) => x.seconds));
  };
  say(`the same step alone and ${cores} at once`);
  const aloneSeconds = await stepOf();
  const concurrentSeconds = upperMedian(await Promise.all(Array.from({ length: cores }, stepOf)));
  say(`pass times with ${cores} ranks at once`);
  const passJitter = await measurePassJitter(o, cores);
  say(`waits at collectives with ${cores} ranks at once`);
  const waits = await syncWaits(o.backend, cores, SYNC_SEGMENT_SECONDS, SYNC_SEGMENTS);
  return {
    ...fitted, concurrency: { ranks: cores, aloneSeconds, concurrentSeconds, slowdown: Math.max(1, concurrentSeconds / aloneSeconds) }, passJitter,
    syncWaits: { ...waits, ranks: cores },
  };
}

/** Segment lengths the collective waits are measured after (0.2 to 2 ms: tiny-gpt's tp2 segments are 0.2 to 0.6 ms), and segments of each. */
const SYNC_SEGMENT_SECONDS = [0.0002, 0.0006, 0.002];
const SYNC_SEGMENTS = 300;

/**
 * How much single passes vary with every core busy, which decides how long pipeline stages wait on each
 * other (the simulator's PassJitter): one copy per core of the smallest fit shape's step (the size of
 * tiny-gpt's, whose passes take milliseconds) with 8 micro-batches, 30 steps; of each copy's middle 10 steps,
 * when all copies surely run, the forwards and the backwards: mean time, and the log-time spread about
 * the copy's own mean. Forwards and backwards give two pass lengths, so the spread's dependence on length.
 */
const JITTER_MICRO_BATCHES = 8;

async function measurePassJitter(o: CalibrateOptions, cores: number): Promise<NonNullable<DeviceProfile["passJitter"]>> {
  const probe = fitShapes(o.base)[0]!;
  const plan: Plan = { ...probe.plan, globalBatch: JITTER_MICRO_BATCHES };
  const copies = await Promise.all(Array.from({ length: cores }, async () => {
    const ex = await execute({ model: probe.model, plan, steps: 30, backend: o.backend, reference: false });
    return ex.results[0]!.steps.slice(10, 20);
  }));
  const spread = (pass: (s: StepRecord) => readonly number[]): PassSpread & { count: number } => {
    const groups = copies.map((steps) => steps.flatMap(pass));
    const all = groups.flat();
    return { meanSeconds: mean(all), logSd: pooledLogSd(groups), count: all.length };
  };
  const { count: forwards, ...forward } = spread((s) => s.forwardPassSeconds);
  const { count: backwards, ...backward } = spread((s) => s.backwardPassSeconds);
  return { shape: `${probe.shape}, ${JITTER_MICRO_BATCHES} micro-batches`, samples: forwards + backwards, forward, backward };
}
