import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { dpBytes, dpExposedSeconds, passTotal, ppSendsOfStage } from "./communication.js";
import { peakFlops } from "./compute.js";
import { stepFlops } from "./flops.js";
import { gradientCastPeak, stageActivationBytes, withAllocatorCache, type MemoryBreakdown } from "./memory.js";
import { parameterServerCost, parameterServerStepSeconds } from "./parameter-server.js";
import { pipelineSeconds, ppCriticalTransfers, type StageTime } from "./pipeline.js";
import { memoryCosts, planCosts, stageComputeSeconds, stageMicroBatchSeconds, type MemoryCosts, type PlanCosts, type StageCost } from "./stages.js";
import type { Estimate } from "./types.js";
import { splitsBackward } from "../../spec/virtual-stages.js";

/**
 * Peak memory of each stage's GPUs: model states, activations in flight (schedule-dependent) and the rest,
 * or, when it is larger, the same states during the optimizer step with its fp32 gradient copy (counted
 * as gradients; the activations are gone by then), or, under DeepSpeed's BF16_Optimizer, right after a
 * backward while it casts a gradient to fp32 (gradientCastPeak; the cast counted as gradients).
 */
export function stageMemory(model: ModelSpec, plan: Plan, costs: MemoryCosts, stage: number): MemoryBreakdown {
  return stagePeak(model, plan, costs, stage).breakdown;
}

/**
 * What a stage adds to its model states at its peak, the largest of its candidates: the activations in
 * flight during a backward, the optimizer step's fp32 gradient copy (no activations left), and under
 * keep16BitGrads the fp32 cast right after a backward (gradientCastPeak). Both copies count as gradients.
 */
function peakAddition(model: ModelSpec, plan: Plan, costs: MemoryCosts, stage: number): { activationsBytes: number; addedGradientsBytes: number; atOptimizerStep: boolean } {
  const s = costs.stages[stage]!;
  let best = { activationsBytes: stageActivationBytes(model, plan, stage, costs.microBatches, costs.activations), addedGradientsBytes: 0, atOptimizerStep: false };
  if (s.optimizerStepBytes > best.activationsBytes) best = { activationsBytes: 0, addedGradientsBytes: s.optimizerStepBytes, atOptimizerStep: true };
  const cast = gradientCastPeak(model, plan, stage, costs.microBatches, costs.activations);
  if (cast !== undefined && cast.activationsBytes + cast.castBytes > best.activationsBytes + best.addedGradientsBytes) {
    best = { activationsBytes: cast.activationsBytes, addedGradientsBytes: cast.castBytes, atOptimizerStep: false };
  }
  return best;
}

/**
 * stageMemory's breakdown, and whether it is the optimizer step's peak rather than the backward's. "Other"
 * is what lies beside states and activations: the other tensors, the runtime's reserve and the caching
 * allocator's share (memory.ts withAllocatorCache).
 */
function stagePeak(model: ModelSpec, plan: Plan, costs: MemoryCosts, stage: number): { breakdown: MemoryBreakdown; atOptimizerStep: boolean } {
  const s = costs.stages[stage]!;
  const add = peakAddition(model, plan, costs, stage);
  const gradientsBytes = s.states.gradientsBytes + add.addedGradientsBytes;
  const held = s.states.parametersBytes + gradientsBytes + s.states.optimizerBytes + add.activationsBytes;
  const otherBytes = withAllocatorCache(plan, costs.reserveBytes, held + costs.otherTensorBytes) - held;
  return { breakdown: { ...s.states, gradientsBytes, activationsBytes: add.activationsBytes, otherBytes }, atOptimizerStep: add.atOptimizerStep };
}

/** The step's time pieces that do not come from the pipeline schedule itself. */
export interface OffPipelineSeconds {
  readonly ppCommSeconds: number;
  readonly dpCommSeconds: number;
  readonly optimizerSeconds: number;
  readonly dpBytesPerGpu: number;
}

/**
 * Data-parallel exposure (the worst stage's), the pipeline's p2p on the critical path and the optimizer,
 * around a pipelined part of `pipelineSeconds`.
 */
export function offPipeline(shape: ClusterShape, plan: Plan, costs: PlanCosts, pipelineSecondsValue: number, critical: StageCost): OffPipelineSeconds {
  const m = costs.microBatches;
  let dpCommSeconds = 0;
  let dpBytesPerGpu = 0;
  let optimizerSeconds = 0;
  const v = plan.virtualStages;
  const split = splitsBackward(plan.schedule);
  // Stage i's first forward waits for the earlier stages' first forwards; after its last backward its own
  // collectives and the earlier stages' last backwards still run (GPipe, 1F1B, interleaved, naive). ZB-H1
  // and ZB-V end on weight-gradient passes whose order is not fixed, so they get no drain credit.
  let fillSeconds = 0;
  let drainSeconds = 0;
  for (const s of costs.stages) {
    const forwardSeconds = s.forwardSeconds;
    const backwardSeconds = s.backwardInputSeconds + s.backwardWeightSeconds + s.recomputeSeconds;
    // A split backward (ZB-H1, ZB-V) reduces behind the weight-gradient pass W, the only one that produces gradients.
    const reduceWindow = split ? s.backwardWeightSeconds : backwardSeconds;
    // The stage's own tensor/context/expert collectives after its backward run beside the last reduction.
    const trailing = (s.tp.backward.seconds + s.cp.backward.seconds + s.ep.backward.seconds) / v;
    // Exposed, the reduction waits for those collectives too.
    const drain = split ? 0 : drainSeconds + (plan.dpCommExposed === true ? 0 : trailing);
    const windows = { forwardSeconds, backwardSeconds: reduceWindow, virtualStages: v, fillSeconds, drainSeconds: drain, exposed: plan.dpCommExposed === true, blocking: plan.dpCommBlocking === true };
    fillSeconds += forwardSeconds / v;
    drainSeconds += backwardSeconds / v;
    dpCommSeconds = Math.max(dpCommSeconds, dpExposedSeconds(s.dp, m, windows));
    dpBytesPerGpu = Math.max(dpBytesPerGpu, dpBytes(s.dp, m));
    optimizerSeconds = Math.max(optimizerSeconds, s.optimizerSeconds);
  }
  if (plan.parameterServers > 0) {
    const ps = parameterServerCost(plan, shape, critical.params);
    const busy = pipelineSecondsValue + optimizerSeconds;
    dpCommSeconds = parameterServerStepSeconds(plan, busy, ps.seconds) - busy;
    dpBytesPerGpu = ps.pushBytesPerWorker;
  }
  // A tied embedding's gradient sum (tied.ts) runs after the pipeline and before the optimizer, exposed.
  const tiedSeconds = Math.max(0, ...costs.stages.map((s) => s.tiedSync.seconds));
  return { ppCommSeconds: ppCriticalTransfers(plan, m) * costs.ppTransfer.seconds + tiedSeconds, dpCommSeconds, optimizerSeconds, dpBytesPerGpu };
}

/** The busiest stage's pipeline bytes per step: its sends, and a tied embedding's gradient sum where it has one. */
function ppBytesPerGpu(plan: Plan, costs: PlanCosts): number {
  const m = costs.microBatches;
  return Math.max(0, ...costs.stages.map((s, i) => m * ppSendsOfStage(plan, i) * costs.ppTransfer.bytes + s.tiedSync.bytes));
}

/** The analytic step timing of a plan, before it is dressed as an Estimate. */
export function analyticTiming(shape: ClusterShape, plan: Plan, costs: PlanCosts): StepTiming {
  const m = costs.microBatches;
  const times: StageTime[] = costs.stages.map((s) => {
    const totalSeconds = stageMicroBatchSeconds(s);
    return { totalSeconds, weightGradSeconds: s.backwardWeightSeconds, chainSeconds: totalSeconds - s.blockingTransferSeconds };
  });
  const pipe = pipelineSeconds(plan, times, m, costs.vPassRatios);
  const crit = costs.stages[pipe.critical]!;
  const off = offPipeline(shape, plan, costs, pipe.seconds, crit);
  // Blocking transfers (plan.ppBlockingSends) and in-line data-parallel collectives (plan.dpCommBlocking)
  // sit inside each stage's time for the schedule; the step's breakdown reports the critical stage's as
  // pipeline and data-parallel traffic, so its parts still add up to the step.
  const transfers = m * crit.blockingTransferSeconds;
  const inLineDp = m * crit.blockingDpSeconds;
  // Once a step, the critical stage's chunks' first forwards (new weights' first use: the executor's profile).
  const firstForwards = crit.firstForwardSeconds.reduce((a, x) => a + x, 0);
  return {
    pipelineSeconds: pipe.seconds - transfers - inLineDp + firstForwards,
    bubbleSeconds: pipe.seconds - m * stageMicroBatchSeconds(crit),
    critical: crit,
    off: { ...off, ppCommSeconds: off.ppCommSeconds + transfers, dpCommSeconds: off.dpCommSeconds + inLineDp },
  };
}

export function stepSecondsOf(timing: StepTiming): number {
  return timing.pipelineSeconds + timing.off.ppCommSeconds + timing.off.dpCommSeconds + timing.off.optimizerSeconds;
}

/** The worst stage and its peak bytes (1F1B stage i holds min(p - i, m) micro-batches, so memory differs per stage). */
export function worstStageMemory(model: ModelSpec, plan: Plan, costs: MemoryCosts): { stage: number; bytes: number } {
  let stage = 0;
  let bytes = -1;
  for (let i = 0; i < plan.pp; i++) {
    const s = costs.stages[i]!;
    const st = s.states;
    // stageMemory's total, without building the breakdown (this runs for every candidate of a search)
    const add = peakAddition(model, plan, costs, i);
    const b = withAllocatorCache(plan, costs.reserveBytes, st.parametersBytes + st.gradientsBytes + st.optimizerBytes + costs.otherTensorBytes + add.activationsBytes + add.addedGradientsBytes);
    if (b > bytes) [stage, bytes] = [i, b];
  }
  return { stage, bytes };
}

/** Whether a plan fits, and its peak: what a search needs before it times the plan. */
export interface QuickMemory {
  readonly peakBytesPerGpu: number;
  readonly fits: boolean;
}

/** What a search needs to rank a plan, without building the whole Estimate. */
export interface QuickScore extends QuickMemory {
  readonly tokensPerSecond: number;
}

/** quickMemory from the plan's memory costs (memoryCosts or planCosts). */
export function quickMemoryOf(model: ModelSpec, shape: ClusterShape, plan: Plan, costs: MemoryCosts): QuickMemory {
  const peak = worstStageMemory(model, plan, costs).bytes;
  return { peakBytesPerGpu: peak, fits: peak <= shape.spec.gpu.memoryBytes };
}

/** quickScore's memory alone (the same numbers), without timing the plan. */
export function quickMemory(model: ModelSpec, shape: ClusterShape, plan: Plan): QuickMemory {
  return quickMemoryOf(model, shape, plan, memoryCosts(model, shape, plan));
}

/** quickScore's speed alone, for a caller that has the memory already (quickMemory). */
export function quickTokensPerSecond(model: ModelSpec, shape: ClusterShape, plan: Plan, costs = planCosts(model, shape, plan)): number {
  return (plan.globalBatch * plan.seqLen) / stepSecondsOf(analyticTiming(shape, plan, costs));
}

export function quickScore(model: ModelSpec, shape: ClusterShape, plan: Plan): QuickScore {
  const costs = planCosts(model, shape, plan);
  return { ...quickMemoryOf(model, shape, plan, costs), tokensPerSecond: quickTokensPerSecond(model, shape, plan, costs) };
}

/** The analytic cost model: memory, time, communication and throughput of one plan. Pure. */
export function estimate(model: ModelSpec, shape: ClusterShape, plan: Plan): Estimate {
  const costs = planCosts(model, shape, plan);
  return assembleEstimate(model, shape, plan, costs, analyticTiming(shape, plan, costs));
}

export interface StepTiming {
  /** Wall time of the pipelined part (all micro-batches through all stages). */
  readonly pipelineSeconds: number;
  /** Idle time of the critical stage inside the pipelined part. */
  readonly bubbleSeconds: number;
  /** The stage whose busy time sets the pace. */
  readonly critical: StageCost;
  readonly off: OffPipelineSeconds;
}

/** Builds the contract's Estimate from the plan's costs and a step timing (analytic here, simulated later). */
export function assembleEstimate(model: ModelSpec, shape: ClusterShape, plan: Plan, costs: PlanCosts, timing: StepTiming): Estimate {
  const gpu = shape.spec.gpu;
  const m = costs.microBatches;
  const crit = timing.critical;
  const off = timing.off;
  const stepSeconds = stepSecondsOf(timing);
  const { stage: worst, bytes: peakBytesPerGpu } = worstStageMemory(model, plan, costs);
  const worstMemory = stagePeak(model, plan, costs, worst);

  let tpBytes = 0;
  let cpBytes = 0;
  let epBytes = 0;
  for (const s of costs.stages) {
    tpBytes = Math.max(tpBytes, s.tp.forward.bytes + s.tp.backward.bytes);
    cpBytes = Math.max(cpBytes, s.cp.forward.bytes + s.cp.backward.bytes);
    epBytes = Math.max(epBytes, s.ep.forward.bytes + s.ep.backward.bytes);
  }

  const flops = stepFlops(model, plan);
  const peak = peakFlops(gpu, plan);
  const perGpu = (f: number) => f / (shape.gpus * stepSeconds);

  return {
    model: model.name,
    cluster: { name: shape.spec.name, gpu: gpu.name, gpus: shape.gpus, gpusPerNode: shape.gpusPerNode },
    plan,
    memory: { peakBytesPerGpu, capacityBytes: gpu.memoryBytes, fits: peakBytesPerGpu <= gpu.memoryBytes, breakdown: worstMemory.breakdown, worstStage: worst,
      ...(worstMemory.atOptimizerStep ? { atOptimizerStep: true } : {}) },
    time: {
      stepSeconds,
      breakdown: {
        computeSeconds: m * stageComputeSeconds(crit),
        tpCommSeconds: m * passTotal(crit.tp).seconds,
        cpCommSeconds: m * passTotal(crit.cp).seconds,
        ppCommSeconds: off.ppCommSeconds,
        dpCommSeconds: off.dpCommSeconds,
        bubbleSeconds: timing.bubbleSeconds,
        optimizerSeconds: off.optimizerSeconds,
        epCommSeconds: m * passTotal(crit.ep).seconds,
      },
    },
    throughput: {
      tokensPerSecond: (plan.globalBatch * plan.seqLen) / stepSeconds,
      modelTflopsPerGpu: perGpu(flops.modelFlops) / 1e12,
      hardwareTflopsPerGpu: perGpu(flops.hardwareFlops) / 1e12,
      mfu: perGpu(flops.modelFlops) / peak,
      hfu: perGpu(flops.hardwareFlops) / peak,
    },
    pipeline: { bubbleFraction: timing.pipelineSeconds > 0 ? timing.bubbleSeconds / timing.pipelineSeconds : 0, microBatches: m },
    communication: {
      bytesPerGpuPerStep: { tp: m * tpBytes, cp: m * cpBytes, pp: ppBytesPerGpu(plan, costs), dp: off.dpBytesPerGpu, ep: m * epBytes },
    },
  };
}
