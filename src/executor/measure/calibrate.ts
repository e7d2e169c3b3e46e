import { cpus } from "node:os";
import type { ModelSpec, Plan } from "../../spec/types.js";
import type { ProbeResult } from "../run/probe.js";
import type { FabricSpec } from "../comm/fabric.js";
import { DEFAULT_WARMUP_STEPS, execute, runReference } from "../execute.js";
import { loadBackend, type BackendChoice } from "../run/backend.js";
import { launch } from "../run/launch.js";
import { optimizerBytesPerSecond } from "./optimizer.js";
import { lossCost } from "./loss.js";
import { embeddingCost, firstUsePerParam, firstUseSeconds, layerPassSeconds, passShares, type LayerPassSeconds } from "./passes.js";
import { matmulSeconds } from "./matmul.js";
import { collectiveWaits } from "./waits.js";
import { routingCost } from "./routing.js";
import type { StepRecord } from "../run/job.js";
import { thisMachine } from "./machine.js";
import { FIT_MICRO_BATCHES, fitPlan, withFitExperts } from "./fit-plan.js";
import { FEWER_RANKS, fitShapeName, predict, profileCluster, type DeviceProfile, type PassSpread, type PassSpreads } from "./profile.js";
import { lineFit, mean, pooledLogSd, upperMedian } from "./stats.js";
import { minimize } from "../../math/nelder-mead.js";

/**
 * `meshplan calibrate`: measures this machine as the executor uses it and sets the cost model's two
 * efficiency constants (design brief section 4: "a roofline plus a fitted efficiency curve whose
 * constants are measured and recorded"). Measured: float32 matmul by size on one rank (the roofline's
 * peak), one thread's memcpy, the shared-memory all-reduce between two ranks (bandwidth) and a ping-pong
 * (latency), the optimizer step. Fitted: the cost model's fixed cost per GEMM and its element-wise rate, by
 * a grid search that makes its step time match single-rank training steps of small GPTs, measured after
 * their warm-up (not the plans later checked against it; fitConstants).
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
 * context parallel use: tensor to tensor on the given backend, reading the other rank's wasm heap where it
 * can be shared (run/tensor-group.ts), else through the slots. Their per-layer traffic is most of what
 * crosses the fabric; the data-parallel gradients are reduced in place in their bucket
 * (src/executor/README.md, "Speed").
 */
export async function collectiveSeconds(sizes: readonly number[], repeat: number, timeoutSeconds: number, backend: BackendChoice): Promise<number[]> {
  const fabric: FabricSpec = { ranks: 2, groups: [{ name: "pair", kind: "tp", members: [0, 1], capacityFloats: Math.max(...sizes) }], channels: [] };
  const script = sizes.map((n) => ({ op: "all-reduce-tensor" as const, group: "pair", n }));
  const payload = { script, repeat, keepOutputs: false, heap: true, backend };
  const res = (await launch({ fabric, timeoutSeconds, ranks: [0, 1].map(() => ({ program: "probe" as const, payload, shareHeap: true })) })) as ProbeResult[];
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

/** Round trips of each latency round; the first 10 are left out (messageLatencySeconds). */
const LATENCY_PINGS = 201;

/**
 * The link's latency from the latency rounds taken at the start, middle and end of a calibration: the
 * smallest. A round's median is either the hand-over of two running ranks (4.5-5.6 us on the 2-core VM)
 * or, where one rank had lost its core for the round, the wake-up of a sleeping one: six calibrations of
 * one session measured 62.8, 19.8, 65.9, 60.0, 5.6 and 4.5 us with one round each, and the three near
 * 60 us put every tp2 step 22-42% under its prediction (224 collectives a step, each charged its latency
 * on every ring step), where the executor's tp collectives spent about 7 us each outside their waits (tp
 * seconds less idle seconds per call, tiny-gpt tp2). Those wake-ups are the waits at collectives, which
 * calibrate measures with the executor's own collectives (waits.ts) and the simulator adds apart.
 */
export function linkLatencySeconds(rounds: readonly number[]): number {
  if (rounds.length === 0) throw new RangeError("link latency: no round measured");
  return Math.min(...rounds);
}


/**
 * The fit shapes' steps are timed in rounds, each shape in turn in every round: on a shared VM whose
 * speed drifts from one minute to the next (src/executor/README.md "Time"), a slow spell then lands on
 * every shape alike instead of on one, which would move the fitted split between the constants (two
 * calibrations a minute apart fitted 25 and 117 us per GEMM when each shape was timed once). Each shape's
 * figure is the median of all its timed steps.
 */
const FIT_ROUNDS = 3;
const FIT_STEPS = 6;
/** Timed rounds of each layer pass measurement (after as many untimed). */
const LAYER_PASS_REPEATS = 21;
/** Alternating alone / all-cores measurements of the concurrency slowdown (one of each: 1.00 to 1.46 over six calibrations). */
const CONCURRENCY_ROUNDS = 3;

/** Small GPTs the constants are fitted to (one rank, FIT_MICRO_BATCHES micro-batches of one sequence). */
export function fitShapes(base: ModelSpec): { shape: string; model: ModelSpec; plan: Plan }[] {
  const shapes: [number, number, number][] = [[64, 32, 2], [64, 8, 2], [128, 32, 2], [64, 64, 4]];
  return shapes.map(([h, s, layers]) => {
    const model: ModelSpec = { ...base, name: `fit-${h}x${s}x${layers}`, hiddenSize: h, headDim: h / base.attentionHeads, ffnHiddenSize: 4 * h, seqLen: s, layers };
    return { shape: fitShapeName(model), model, plan: fitPlan(layers, s, FIT_MICRO_BATCHES) };
  });
}

type FitRun = { shape: string; model: ModelSpec; plan: Plan; measuredSeconds: number };

/** The cost model's single-rank step for a fit shape with the two constants set (what fitConstants fits). */
export function fitStepSeconds(base: FitBase, overhead: number, bw: number, r: Pick<FitRun, "model" | "plan">): number {
  const draft = { ...base, opOverheadSeconds: overhead, elementwiseBytesPerSecond: bw, fit: [] } as DeviceProfile;
  return predict(r.model, { spec: profileCluster(draft), gpus: 1, gpusPerNode: 1024 }, r.plan).time.stepSeconds;
}

export type FitBase = Omit<DeviceProfile, "opOverheadSeconds" | "elementwiseBytesPerSecond" | "fit">;

/**
 * The cost model's two fitted constants, its fixed cost per GEMM and its element-wise rate, by a grid
 * search (log-spaced: 0 and 0.1 us to 1 ms; 10 MB/s to 100 GB/s) refined by Nelder-Mead, minimising the squared log error of the
 * predicted single-rank steps. The fit shapes make both identifiable: two differ only in tokens per
 * micro-batch (h64 at 32 and at 8), so the part of a step that does not scale with tokens (per-product
 * and per-kernel costs) is measured, not assumed; the others vary the width and the depth. (An earlier
 * fit had no such pair and was ill-conditioned: the same three steps fitted 0.1 us or 290 us, the noise
 * decided; a fixed cost derived from one kernel's dispatch instead put cp2's 16-token steps 1.3-1.8x
 * over, src/executor/README.md "Time".)
 */
export function fitConstants(base: FitBase, runs: readonly FitRun[]): DeviceProfile {
  const error = (overhead: number, bw: number) => runs.reduce((a, r) => a + Math.log(fitStepSeconds(base, overhead, bw, r) / r.measuredSeconds) ** 2, 0);
  let best = { err: Infinity, bw: 1e9, overhead: 0 };
  for (let i = 0; i <= 60; i++) {
    const overhead = i === 0 ? 0 : 10 ** (-7 + (4 * i) / 60);
    for (let j = 0; j <= 80; j++) {
      const bw = 10 ** (7 + (4 * j) / 80);
      const err = error(overhead, bw);
      if (err < best.err) best = { err, bw, overhead };
    }
  }
  // Then from the best grid point, continuously (the grid's steps are 17% and 12%, and along the valley
  // where a larger fixed cost trades for faster element-wise work the nearest grid point can sit a step
  // off in both): in log10 of (overhead + 0.1 us), so that 0 stays reachable, and log10 of the rate.
  const offset = 1e-7;
  const from = (x: readonly number[]) => ({ overhead: Math.max(0, 10 ** x[0]! - offset), bw: 10 ** x[1]! });
  const refined = minimize((x) => {
    const c = from(x);
    return error(c.overhead, c.bw);
  }, [Math.log10(best.overhead + offset), Math.log10(best.bw)], { step: 0.02, maxEvaluations: 300, tolerance: 1e-12 });
  const { overhead, bw } = refined.value < best.err ? from(refined.x) : best;
  const fit = runs.map((r) => ({ shape: r.shape, measuredSeconds: r.measuredSeconds, fittedSeconds: fitStepSeconds(base, overhead, bw, r) }));
  return { ...base, opOverheadSeconds: overhead, elementwiseBytesPerSecond: bw, fit };
}

export interface CalibrateOptions {
  readonly backend: BackendChoice;
  readonly base: ModelSpec;
  readonly onProgress?: (what: string) => void;
}

/**
 * A turn of the event loop between two measurements: most of them run synchronously in this thread for a
 * second or more, and the explorer calibrates on its own thread, so its keys (q) are read only here.
 */
function betweenMeasurements(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function calibrate(o: CalibrateOptions): Promise<DeviceProfile> {
  const say = o.onProgress ?? (() => {});
  const loaded = await loadBackend(o.backend, 1);
  say("matrix multiplies");
  const matmul: DeviceProfile["matmul"][number][] = [];
  for (const n of MATMUL_SIZES) {
    await betweenMeasurements();
    const seconds = matmulSeconds(loaded.tf, n, n >= 256 ? 9 : 31);
    matmul.push({ n, seconds, flopsPerSecond: (2 * n ** 3) / seconds });
  }
  say("memory copies");
  await betweenMeasurements();
  const memcpy = memcpyBytesPerSecond();
  say("collectives");
  const sizes = [256, 1024, 16384, 262144, 1048576];
  const times = await collectiveSeconds(sizes, 21, 60, o.backend);
  const line = lineFit(sizes.map((n) => 4 * n), times);
  // The first of the latency's rounds (linkLatencySeconds); the others come later in the calibration.
  const latencies = [await messageLatencySeconds(LATENCY_PINGS, 60)];
  const base = {
    version: 1 as const,
    measuredAt: new Date().toISOString(),
    machine: thisMachine(),
    backend: loaded.backend,
    matmul,
    peakFlopsPerSecond: Math.max(...matmul.map((m) => m.flopsPerSecond)),
    memcpyBytesPerSecond: memcpy,
    collectiveBytesPerSecond: line.b > 0 ? 1 / line.b : memcpy,
    // The alpha-beta line's intercept is too noisy at these sizes to give the latency; the ping-pong does.
    collectiveLatencySeconds: latencies[0]!,
  };
  say("the optimizer");
  await betweenMeasurements();
  const optimizerRate = optimizerBytesPerSecond(loaded.tf);
  say("the loss");
  await betweenMeasurements();
  const loss = lossCost(loaded.tf, o.base.vocabSize);
  const shapes = fitShapes(o.base);
  const timedSteps = shapes.map(() => [] as number[]);
  for (let round = 0; round < FIT_ROUNDS; round++) {
    say(`training steps of ${shapes.length} small GPTs, round ${round + 1} of ${FIT_ROUNDS}`);
    for (const [i, s] of shapes.entries()) {
      // In this thread: the code warmed up in the first round stays warm for the later ones.
      const warmup = round === 0 ? DEFAULT_WARMUP_STEPS : 1;
      await betweenMeasurements();
      const ref = await runReference({ model: s.model, plan: s.plan, steps: FIT_STEPS, warmupSteps: warmup, backend: o.backend });
      timedSteps[i]!.push(...ref.result.steps.slice(warmup).map((x) => x.seconds));
    }
  }
  const runs: FitRun[] = shapes.map((s, i) => ({ ...s, measuredSeconds: upperMedian(timedSteps[i]!) }));
  say(`one layer's forward, input and weight gradients at ${shapes.length} sizes`);
  const measured: ({ shape: string } & LayerPassSeconds)[] = [];
  for (const s of shapes) {
    await betweenMeasurements();
    measured.push({ shape: s.shape, ...layerPassSeconds(loaded.tf, s.model, s.plan, LAYER_PASS_REPEATS) });
  }
  const layerPasses = { shares: passShares(measured), measured };
  say(`the input embedding's passes at ${shapes.length} sizes`);
  await betweenMeasurements();
  const embedding = embeddingCost(loaded.tf, shapes, LAYER_PASS_REPEATS);
  say(`a mixture of experts' routing at ${shapes.length} sizes`);
  await betweenMeasurements();
  const moeRouting = routingCost(loaded.tf, shapes.map((s) => ({ ...s, model: withFitExperts(s.model) })), LAYER_PASS_REPEATS);
  say(`one layer's forward with new weight tensors at ${shapes.length} sizes`);
  const firstUse: { shape: string; params: number; seconds: number }[] = [];
  for (const s of shapes) {
    await betweenMeasurements();
    firstUse.push({ shape: s.shape, ...firstUseSeconds(loaded.tf, s.model, s.plan, LAYER_PASS_REPEATS) });
  }
  const weightFirstUse = { secondsPerParam: firstUsePerParam(firstUse), measured: firstUse };
  latencies.push(await messageLatencySeconds(LATENCY_PINGS, 60));
  say("fitting");
  // The fit's steps include each layer's first forward of the step with new weights, so it sees that cost too.
  const fitted = fitConstants({ ...base, optimizerBytesPerSecond: optimizerRate, loss, embedding, moeRouting, layerPasses, weightFirstUse }, runs);
  const cores = cpus().length;
  if (cores < 2) return { ...fitted, collectiveLatencySeconds: linkLatencySeconds(latencies) };
  // The first fit shape, in worker threads as execute runs ranks: alone, then one copy per core at once,
  // in turn for CONCURRENCY_ROUNDS rounds. The slowdown is the copies' step against the fitted constants'
  // prediction for it, not against the step alone: over two calibrations minutes apart the copies took
  // 79.3 and 79.5 ms, the step alone 77.2 and 50.8 ms, and the fit shapes in this thread moved as much,
  // so a ratio to either carried their noise into every prediction (src/executor/TIME-RECORD.md, "The concurrency factor's anchor").
  const probe = shapes[0]!;
  const stepOf = async () => upperMedian((await timedCopy(o, probe.model, probe.plan)).map((x) => x.seconds));
  say(`the same step alone and ${cores} at once`);
  const alone: number[] = [];
  const together: number[] = [];
  for (let round = 0; round < CONCURRENCY_ROUNDS; round++) {
    alone.push(await stepOf());
    together.push(upperMedian(await Promise.all(Array.from({ length: cores }, stepOf))));
  }
  const concurrency = { ...concurrencyFigures(cores, alone, together, fitted.fit[0]!.fittedSeconds), probe: { shape: probe.shape, model: probe.model, plan: probe.plan } };
  say(`pass times with ${cores} ranks at once${cores > FEWER_RANKS ? ` and with ${FEWER_RANKS}` : ""}`);
  const passJitter = await measurePassJitter(o, cores);
  say(`waits at collectives with ${cores} ranks at once${cores > FEWER_RANKS ? ` and with ${FEWER_RANKS}` : ""}`);
  const busyWaits = await collectiveWaits(o.backend, shapes, fitted, cores);
  const fewerWaits = busyWaits.ranks > FEWER_RANKS ? await collectiveWaits(o.backend, shapes, fitted, FEWER_RANKS) : undefined;
  const waits = fewerWaits === undefined ? busyWaits : { ...busyWaits, fewerRanks: { ranks: fewerWaits.ranks, points: fewerWaits.points } };
  latencies.push(await messageLatencySeconds(LATENCY_PINGS, 60));
  return {
    ...fitted, collectiveLatencySeconds: linkLatencySeconds(latencies), concurrency, passJitter,
    syncWaits: waits,
  };
}

/**
 * DeviceProfile.concurrency from the probe's timed steps alone and with every core busy (medians over the
 * rounds) and the fitted constants' step for it: the slowdown is the busy step against the fitted one.
 */
export function concurrencyFigures(ranks: number, alone: readonly number[], together: readonly number[], fittedSeconds: number): NonNullable<DeviceProfile["concurrency"]> {
  const concurrentSeconds = upperMedian(together);
  return { ranks, aloneSeconds: upperMedian(alone), concurrentSeconds, fittedSeconds, slowdown: concurrentSeconds / fittedSeconds };
}

/**
 * One worker's run of a one-rank plan as the probes with every core busy time it: warm-up steps (the
 * workers start cold, DEFAULT_WARMUP_STEPS), then 10 timed steps, then 5 more so that copies started a
 * little apart all still run while any is timed. The timed steps' records.
 */
async function timedCopy(o: CalibrateOptions, model: ModelSpec, plan: Plan): Promise<readonly StepRecord[]> {
  const ex = await execute({ model, plan, steps: 15, warmupSteps: DEFAULT_WARMUP_STEPS, backend: o.backend, reference: false });
  return ex.results[0]!.steps.slice(DEFAULT_WARMUP_STEPS, DEFAULT_WARMUP_STEPS + 10);
}

/**
 * How much single passes vary with every core busy, which decides how long pipeline stages wait on each
 * other (the simulator's PassJitter): one copy per core of the smallest fit shape's step (the size of
 * tiny-gpt's, whose passes take milliseconds) with 8 micro-batches, passSpreads of their timed steps; and
 * the same with FEWER_RANKS copies where the machine has more cores than that (profile.ts passSpreadAt
 * takes a run's spread between the two by its ranks).
 */
const JITTER_MICRO_BATCHES = 8;

async function measurePassJitter(o: CalibrateOptions, cores: number): Promise<NonNullable<DeviceProfile["passJitter"]>> {
  const probe = fitShapes(o.base)[0]!;
  const plan: Plan = { ...probe.plan, globalBatch: JITTER_MICRO_BATCHES };
  const measure = async (copies: number) => passSpreads(await Promise.all(Array.from({ length: copies }, () => timedCopy(o, probe.model, plan))));
  const busy = await measure(cores);
  const fewerRanks = cores > FEWER_RANKS ? { ranks: FEWER_RANKS, ...(await measure(FEWER_RANKS)) } : undefined;
  return { shape: `${probe.shape}, ${JITTER_MICRO_BATCHES} micro-batches`, ranks: cores, ...busy, ...(fewerRanks === undefined ? {} : { fewerRanks }) };
}

/**
 * The pass-time spread of copies run side by side (each copy's timed steps of a one-rank plan): for the
 * forwards and the backwards, the mean time and the log-time spread about each step's own mean (pooled
 * over the steps of every copy). Within a step, since that is the part that makes pipeline stages wait:
 * a rank slow for a whole step (about half of the spread about a copy's mean on a 16-core machine, log-sd
 * 0.13-0.21 of a step's pass sum) makes that stage the step's bottleneck, whose own bubble stays the
 * schedule's, and pp2 runs measured bubbles well under what the whole spread simulated as independent
 * passes predicts (src/executor/TIME-RECORD.md,
 * "Pass-time jitter within a step, and at a run's load").
 * Each step's first forward is left out: it carries the new weights' first use (XNNPACK's repacking after
 * the update), which the cost model prices apart (StageCost.firstForwardSeconds) and which would otherwise
 * count twice, as a cost and as spread. Forwards and backwards give two pass lengths, so the spread's
 * dependence on length (profile.ts spreadAt).
 */
export function passSpreads(copies: readonly (readonly Pick<StepRecord, "forwardPassSeconds" | "backwardPassSeconds">[])[]): PassSpreads {
  const spread = (pass: (s: Pick<StepRecord, "forwardPassSeconds" | "backwardPassSeconds">) => readonly number[]): PassSpread & { count: number } => {
    const groups = copies.flatMap((steps) => steps.map(pass));
    const all = groups.flat();
    if (all.length < 2) throw new RangeError(`pass spread: ${all.length} passes; want at least 2 of each kind`);
    return { meanSeconds: mean(all), logSd: pooledLogSd(groups), count: all.length };
  };
  const { count: forwards, ...forward } = spread((s) => s.forwardPassSeconds.slice(1));
  const { count: backwards, ...backward } = spread((s) => s.backwardPassSeconds);
  return { samples: forwards + backwards, forward, backward };
}
