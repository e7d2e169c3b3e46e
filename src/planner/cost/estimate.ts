import { microBatchCount } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { layerActivationBytes } from "./activations.js";
import {
  cpCostPerMicroBatch, dpBytes, dpCosts, dpExposedSeconds, epCostPerMicroBatch, ppSendsPerMicroBatch, ppTransfer,
  resolveLinks, tpCostPerMicroBatch,
} from "./communication.js";
import { headTimes, layerTimes, peakFlops } from "./compute.js";
import { stepFlops } from "./flops.js";
import {
  gradientBytesPerParam, layerParamsPerRank, modelStateBytes, OPTIMIZER_BYTES, otherBytes, PARAM_BYTES,
  stageActivationBytes, stageParams, type MemoryBreakdown,
} from "./memory.js";
import { parameterServerCost, parameterServerStepSeconds } from "./parameter-server.js";
import { pipelineSeconds, ppCriticalTransfers, type StageTime } from "./pipeline.js";
import type { Estimate } from "./types.js";

/**
 * Adam's update reads the fp32 master weight, both moments and the gradient, and writes the three fp32
 * states and the 16-bit weight (Kingma & Ba 2015, algorithm 1): 12 + g + 12 + 2 bytes per parameter.
 */
function optimizerSeconds(plan: Plan, paramsInShard: number, hbmBytesPerSecond: number): number {
  if (plan.parameterServers > 0) return 0;
  return (paramsInShard * (2 * OPTIMIZER_BYTES + gradientBytesPerParam(plan) + PARAM_BYTES)) / hbmBytesPerSecond;
}

interface StageResult {
  readonly time: StageTime;
  readonly computeSeconds: number;
  readonly tp: { bytes: number; seconds: number };
  readonly cp: { bytes: number; exposedSeconds: number };
  readonly ep: { bytes: number; seconds: number };
  readonly dpExposedSeconds: number;
  readonly dpBytes: number;
  readonly optimizerSeconds: number;
  readonly states: Pick<MemoryBreakdown, "parametersBytes" | "gradientsBytes" | "optimizerBytes">;
  readonly params: number;
}

/** The analytic cost model: memory, time, communication and throughput of one plan. Pure. */
export function estimate(model: ModelSpec, shape: ClusterShape, plan: Plan): Estimate {
  const gpu = shape.spec.gpu;
  const m = microBatchCount(plan);
  const links = resolveLinks(plan, shape);
  const layer = layerTimes(model, gpu, plan);
  const head = headTimes(model, gpu, plan);
  const acts = layerActivationBytes(model, plan);
  const perLayer = layerParamsPerRank(model, plan);
  const other = otherBytes(model, gpu, plan, perLayer);
  const memEff = gpu.hbmBytesPerSecond * gpu.efficiency.memoryBandwidth;

  // Stages differ only by their layer counts and by being first or last: a middle stage like the one
  // before it is not evaluated again.
  const stages: StageResult[] = [];
  for (let i = 0; i < plan.pp; i++) {
    const prev = i - 1;
    const same = prev > 0 && i < plan.pp - 1 &&
      plan.layersPerStage[i] === plan.layersPerStage[prev] && plan.recomputeLayersPerStage[i] === plan.recomputeLayersPerStage[prev];
    stages.push(same ? stages[prev]! : evaluateStage(i));
  }

  function evaluateStage(i: number): StageResult {
    const n = plan.layersPerStage[i] ?? 0;
    const r = plan.recomputeLayersPerStage[i] ?? 0;
    const last = i === plan.pp - 1;
    const forward = n * layer.forwardSeconds + (last ? head.forwardSeconds : 0);
    const backwardWeight = n * layer.backwardWeightSeconds;
    const backward = n * layer.backwardInputSeconds + backwardWeight + (last ? head.backwardSeconds : 0);
    const recompute = r * layer.forwardSeconds + (n - r) * layer.selectiveRecomputeSeconds;
    const compute = forward + backward + recompute;
    const tp = tpCostPerMicroBatch(model, plan, links, i);
    const coreBackward = layer.backwardInputSeconds - layer.backwardWeightSeconds; // attention core + element-wise part
    const cp = cpCostPerMicroBatch(model, plan, links, i, layer.attentionCoreForwardSeconds, coreBackward);
    const ep = epCostPerMicroBatch(model, plan, links, i);
    const params = stageParams(model, plan, i, perLayer);
    const dp = dpCosts(plan, links, params);
    const states = modelStateBytes(plan, params);
    const optimizerShard = states.optimizerBytes / OPTIMIZER_BYTES;
    return {
      time: { totalSeconds: compute + tp.seconds + cp.exposedSeconds + ep.seconds, weightGradSeconds: backwardWeight },
      computeSeconds: compute,
      tp, cp, ep,
      dpExposedSeconds: dpExposedSeconds(dp, m, forward, backward),
      dpBytes: dpBytes(dp, m),
      optimizerSeconds: optimizerSeconds(plan, optimizerShard, memEff),
      states,
      params: params.dense + params.expert,
    };
  }

  const pipe = pipelineSeconds(plan, stages.map((s) => s.time), m);
  const crit = stages[pipe.critical]!;
  const bubbleSeconds = pipe.seconds - m * crit.time.totalSeconds;
  const transfer = ppTransfer(model, plan, links);
  const ppCommSeconds = ppCriticalTransfers(plan, m) * transfer.seconds;
  const optimizer = Math.max(...stages.map((s) => s.optimizerSeconds));

  let dpCommSeconds = Math.max(...stages.map((s) => s.dpExposedSeconds));
  let dpBytesPerGpu = Math.max(...stages.map((s) => s.dpBytes));
  if (plan.parameterServers > 0) {
    const ps = parameterServerCost(plan, shape, crit.params);
    const busy = pipe.seconds + optimizer;
    dpCommSeconds = parameterServerStepSeconds(plan, busy, ps.seconds) - busy;
    dpBytesPerGpu = ps.pushBytesPerWorker;
  }
  const stepSeconds = pipe.seconds + ppCommSeconds + dpCommSeconds + optimizer;

  // Memory differs per stage even where time does not: 1F1B stage i holds min(p - i, m) micro-batches.
  let worst = 0;
  let peakBytesPerGpu = -1;
  for (let i = 0; i < plan.pp; i++) {
    const s = stages[i]!.states;
    const bytes = s.parametersBytes + s.gradientsBytes + s.optimizerBytes + stageActivationBytes(model, plan, i, m, acts) + other;
    if (bytes > peakBytesPerGpu) {
      peakBytesPerGpu = bytes;
      worst = i;
    }
  }
  const worstMemory: MemoryBreakdown = { ...stages[worst]!.states, activationsBytes: stageActivationBytes(model, plan, worst, m, acts), otherBytes: other };

  const flops = stepFlops(model, plan);
  const workers = shape.gpus;
  const peak = peakFlops(gpu, plan);
  const perGpu = (f: number) => f / (workers * stepSeconds);
  const maxOf = (pick: (s: StageResult) => number) => Math.max(...stages.map(pick));

  return {
    model: model.name,
    cluster: { name: shape.spec.name, gpu: gpu.name, gpus: shape.gpus, gpusPerNode: shape.gpusPerNode },
    plan,
    memory: {
      peakBytesPerGpu,
      capacityBytes: gpu.memoryBytes,
      fits: peakBytesPerGpu <= gpu.memoryBytes,
      breakdown: worstMemory,
      worstStage: worst,
    },
    time: {
      stepSeconds,
      breakdown: {
        computeSeconds: m * crit.computeSeconds,
        tpCommSeconds: m * crit.tp.seconds,
        cpCommSeconds: m * crit.cp.exposedSeconds,
        ppCommSeconds,
        dpCommSeconds,
        bubbleSeconds,
        optimizerSeconds: optimizer,
        epCommSeconds: m * crit.ep.seconds,
      },
    },
    throughput: {
      tokensPerSecond: (plan.globalBatch * plan.seqLen) / stepSeconds,
      modelTflopsPerGpu: perGpu(flops.modelFlops) / 1e12,
      hardwareTflopsPerGpu: perGpu(flops.hardwareFlops) / 1e12,
      mfu: perGpu(flops.modelFlops) / peak,
      hfu: perGpu(flops.hardwareFlops) / peak,
    },
    pipeline: { bubbleFraction: pipe.seconds > 0 ? bubbleSeconds / pipe.seconds : 0, microBatches: m },
    communication: {
      bytesPerGpuPerStep: {
        tp: m * maxOf((s) => s.tp.bytes),
        cp: m * maxOf((s) => s.cp.bytes),
        pp: m * ppSendsPerMicroBatch(plan) * transfer.bytes,
        dp: dpBytesPerGpu,
        ep: m * maxOf((s) => s.ep.bytes),
      },
    },
  };
}
