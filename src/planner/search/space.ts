import { InputError } from "../../spec/errors.js";
import { checkParameterServers, checkSchedule, checkTensorKnobs, defaultGlobalBatch, ZB_V_CHUNKS, type PlanInput } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec, Recompute, Schedule, ZeroStage } from "../../spec/types.js";
import { balancedLayers } from "../partition/ilp.js";
import { layoutExists } from "../partition/problem.js";
import { divisorsOf } from "../../math/divisors.js";

/** The global batch a search holds fixed, so that every plan does the same work per step. */
export function searchGlobalBatch(model: ModelSpec, pinned: PlanInput): number {
  return pinned.globalBatch ?? defaultGlobalBatch(model, pinned.seqLen ?? model.seqLen);
}

/**
 * Micro-batch sizes for a per-replica batch of b sequences: every divisor of b, so any configuration a
 * user could run is in the space (published runs use 6, 26, 56, 104, ...). Memory rules the large ones
 * out for large models (the pass-1 score is cheap, and the bounds prune before it).
 */
const microBatchCache = new Map<number, number[]>();
function microBatches(b: number): number[] {
  let out = microBatchCache.get(b);
  if (out === undefined) microBatchCache.set(b, (out = divisorsOf(b)));
  return out;
}
/**
 * Interleaving degrees the search tries: Megatron-LM's usual 2, 4 and 8, and 3 where 4 chunks do not fit
 * the stages' layers (Korthikanti et al. 2022 ran their 530B model with 3 chunks of one layer per stage;
 * where 4 fits too, its bubble (p - 1)/(4m) is the smaller, and trying 3 as well cost the search 15% more
 * plans for Llama 3 8B and 405B).
 */
const VIRTUAL_STAGES = [2, 3, 4, 8];

/**
 * The plan space: every factorisation of the GPUs into tp * pp * cp * dp (ep from dp*cp for MoE), the
 * micro-batch sizes that divide the per-replica batch (all of them), the schedules (interleaved with 2, 4
 * or 8 virtual stages), ZeRO 0-3 and recompute none/selective/full, restricted by the model's shape
 * (heads, KV heads and MLP width by tp; layers by pp*v; sequence by cp; experts by ep) and by the pinned flags.
 * Two knobs are not enumerated unless pinned, because the cost model makes them dominated:
 * - sequence parallel off: the same tensor-parallel traffic as on, with more memory and more element-wise
 *   time (each rank repeats the norms and dropouts), so it is never better;
 * - selective recompute with flash attention: the fused kernel keeps no s x s tensors, so it equals none.
 * Pipeline stages need not divide the layers: such meshes start from the most even split and the integer
 * program chooses the layout.
 */
/** A mesh and ZeRO stage, before the knobs that do not change the model states are chosen. */
export interface MeshChoice {
  readonly tp: number;
  readonly pp: number;
  readonly cp: number;
  readonly dp: number;
  readonly ep: number;
  readonly zero: ZeroStage;
}

/**
 * Visits every candidate, with the key of its mesh and micro-batch ("tp pp cp dp ep microBatch": the
 * candidates that share it share the search's compute bound). `skipMesh`, when given, may rule out a mesh
 * and ZeRO stage before its micro-batch, schedule and recompute variants are generated (a bound that
 * holds for all of them).
 */
export function forEachCandidate(
  model: ModelSpec, shape: ClusterShape, pinned: PlanInput, visit: (input: PlanInput, group: string) => void, skipMesh?: (mesh: MeshChoice) => boolean,
): void {
  const gpus = shape.gpus;
  const seqLen = pinned.seqLen ?? model.seqLen;
  const globalBatch = searchGlobalBatch(model, pinned);
  const flash = pinned.flashAttention ?? true;
  const pick = <T>(value: T | undefined, all: readonly T[]): readonly T[] => (value === undefined ? all : [value]);
  // With parameter servers pinned the workers are pure data parallel (checkPins refuses a pinned split):
  // the search chooses the micro-batch and recomputation, over dp = every GPU.
  const servers = pinned.parameterServers ?? 0;
  const split = (all: () => readonly number[]): readonly number[] => (servers > 0 ? [1] : all());
  if (pinned.dpCommBlocking === true && pinned.dpCommExposed === true) {
    throw new InputError({ code: "out-of-range", field: "--dp-comm-blocking", value: true, valid: "false with --dp-comm-exposed", reason: "an exposed once-per-step reduction and collectives in line with every pass are two different engines" });
  }
  checkPins(pinned);
  const recomputes = pick<Recompute>(pinned.recompute, flash ? ["none", "full"] : ["none", "selective", "full"]);
  const allZeros = pick(pinned.zero as ZeroStage | undefined, (servers > 0 ? [0] : [0, 1, 2, 3]) as ZeroStage[]);
  for (const tp of pick(pinned.tp, split(() => divisorsOf(gpus)))) {
    if (model.attentionHeads % tp !== 0 || model.ffnHiddenSize % tp !== 0) continue;
    if (model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) continue;
    const sequenceParallel = tp > 1 ? (pinned.sequenceParallel ?? true) : undefined;
    // The tensor-parallel knobs describe how a framework runs tp: the candidates without it run without them.
    const tensor = tp > 1 ? { tpCommOverlap: pinned.tpCommOverlap, tpSyncBackward: pinned.tpSyncBackward } : { tpCommOverlap: undefined, tpSyncBackward: undefined };
    for (const pp of pick(pinned.pp, split(() => divisorsOf(gpus / tp)))) {
      if (pp > model.layers) continue;
      // DeepSpeed's pipeline-engine knobs describe how it runs a pipeline; without one (pp = 1) its ZeRO
      // optimizer overlaps the reduction with the backward (overlap_comm) as the other frameworks do.
      const engine = pp > 1
        ? { ppBlockingSends: pinned.ppBlockingSends, dpCommExposed: pinned.dpCommExposed, ppKeepOutputs: pinned.ppKeepOutputs }
        : { ppBlockingSends: undefined, dpCommExposed: undefined, ppKeepOutputs: undefined };
      // The starting split of an uneven mesh depends only on pp and v: build it once per v, not per
      // candidate (resolvePlan copies it, so the candidates may share it).
      const splits = new Map<string, readonly number[]>();
      const startingLayers = (v: number, schedule: Schedule): readonly number[] | undefined => {
        if (model.layers % (pp * v) === 0) return undefined;
        // ZB-V puts both ends on the first stage; the other layouts, one on each end stage.
        const key = `${v},${schedule === "zb-v"}`;
        let split = splits.get(key);
        if (split === undefined) {
          split = balancedLayers(model.layers, { pp, virtualStages: v, schedule });
          splits.set(key, split);
        }
        return split;
      };
      for (const cp of pick(pinned.cp, split(() => divisorsOf(gpus / (tp * pp))))) {
        if (seqLen % cp !== 0) continue;
        const dp = gpus / (tp * pp * cp);
        if (pinned.dp !== undefined && pinned.dp !== dp) continue;
        // with one data-parallel rank there is nothing to shard: every ZeRO stage is the same plan (but
        // fp32ShardOnly, FSDP's storage, is stated as ZeRO 3)
        const zeros = dp * cp > 1 || pinned.zero !== undefined || pinned.fp32ShardOnly === true ? allZeros : [0 as ZeroStage];
        const eps = model.moe === undefined || servers > 0 ? [1] : divisorsOf(model.moe.experts).filter((e) => (dp * cp) % e === 0);
        for (const ep of pick(pinned.ep, eps)) {
          for (const zero of zeros) {
            if (engine.dpCommExposed === true && zero > 1) continue; // resolvePlan refuses it
            if (pinned.keep16BitGrads === true && zero > 1) continue; // resolvePlan refuses this too
            if (pinned.fp32ShardOnly === true && zero !== 3) continue; // and this
            // In line: ZeRO 2/3 only (resolvePlan refuses the rest); with one data-parallel rank it is off.
            if (pinned.dpCommBlocking === true && dp * cp > 1 && zero < 2) continue;
            const shardGroups = shardGroupsFor(zero, dp * cp, ep, pinned.shardGroup);
            if (skipMesh?.({ tp, pp, cp, dp, ep, zero }) === true) continue;
            if (globalBatch % dp !== 0) continue;
            for (const microBatch of pick(pinned.microBatch, microBatches(globalBatch / dp))) {
              if ((globalBatch / dp) % microBatch !== 0) continue; // a pinned one may not divide
              const m = globalBatch / (dp * microBatch);
              const group = `${tp} ${pp} ${cp} ${dp} ${ep} ${microBatch}`;
              for (const [schedule, virtualStages] of schedules(model, pp, m, pinned)) {
                const layersPerStage = pinned.layersPerStage ?? startingLayers(virtualStages, schedule);
                for (const recompute of recomputes) for (const shardGroup of shardGroups) {
                  // one object shape for every candidate (a literal, not a spread) keeps this loop fast
                  visit({
                    dp, tp, pp, cp, ep, sequenceParallel, virtualStages, microBatch, globalBatch, seqLen, schedule, zero, recompute,
                    precision: pinned.precision, layersPerStage, recomputeLayersPerStage: pinned.recomputeLayersPerStage,
                    parameterServers: pinned.parameterServers, asynchronous: pinned.asynchronous, staleness: pinned.staleness, flashAttention: flash, fp32Gradients: pinned.fp32Gradients, tpCommOverlap: tensor.tpCommOverlap,
                    ppBlockingSends: engine.ppBlockingSends, dpCommExposed: engine.dpCommExposed, dpCommBlocking: pinned.dpCommBlocking, tpSyncBackward: tensor.tpSyncBackward, launchBlocking: pinned.launchBlocking, recomputeEarlyStop: pinned.recomputeEarlyStop,
                    ppScatterGather: pinned.ppScatterGather, ppKeepOutputs: engine.ppKeepOutputs, keep16BitGrads: pinned.keep16BitGrads, fusedCrossEntropy: pinned.fusedCrossEntropy, fp8Keep16BitInputs: pinned.fp8Keep16BitInputs, fp32ShardOnly: pinned.fp32ShardOnly, optimizerStateBytes: pinned.optimizerStateBytes, optimizerStepBytesPerParam: pinned.optimizerStepBytesPerParam, gradientAccumulationBytesPerParam: pinned.gradientAccumulationBytesPerParam, runtimeReserveBytes: pinned.runtimeReserveBytes, allocatorCacheShare: pinned.allocatorCacheShare, shardGroup,
                    vPassRatios: schedule === "zb-v" ? pinned.vPassRatios : undefined,
                  }, group);
                }
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Pins that contradict each other whatever the search picks for the rest: each would otherwise be dropped
 * without a word (every candidate refusing it, or the search leaving it out), so they are errors, with
 * resolvePlan's message where it has one.
 */
function checkPins(pinned: PlanInput): void {
  // The search's own choices where a pin is left out: a split of 1 and ZeRO 0 under parameter servers.
  const asynchronous = pinned.asynchronous ?? false;
  checkParameterServers({
    parameterServers: pinned.parameterServers ?? 0, tp: pinned.tp ?? 1, pp: pinned.pp ?? 1, cp: pinned.cp ?? 1, ep: pinned.ep ?? 1,
    zero: pinned.zero ?? (pinned.fp32ShardOnly === true ? 3 : 0), asynchronous, staleness: pinned.staleness ?? (asynchronous ? 1 : 0),
    dpCommExposed: pinned.dpCommExposed ?? false, dpCommBlocking: pinned.dpCommBlocking ?? false,
  });
  if ((pinned.parameterServers ?? 0) > 0 && pinned.shardGroup !== undefined) {
    throw new InputError({ code: "out-of-range", field: "shardGroup", value: pinned.shardGroup, valid: "left out with parameter servers", reason: "the servers hold the optimizer" });
  }
  if (pinned.tp !== undefined) checkTensorKnobs(pinned.tp, pinned);
  if (pinned.schedule !== undefined) checkSchedule(pinned.schedule, pinned.pp, pinned.virtualStages);
  if (pinned.zero === 0 && pinned.shardGroup !== undefined) {
    throw new InputError({ code: "out-of-range", field: "shardGroup", value: pinned.shardGroup, valid: "left out with ZeRO 0", reason: "ZeRO 0 shards nothing" });
  }
}

/**
 * The schedule the flags pin: --schedule, or the interleaved one for a --vpp above 1 (only that schedule
 * has virtual stages); undefined when the search chooses.
 */
export function pinnedSchedule(pinned: PlanInput): Schedule | undefined {
  const v = pinned.virtualStages;
  return pinned.schedule ?? (v !== undefined && v > 1 ? "interleaved" : undefined);
}

/**
 * Schedules worth evaluating for a mesh: 1F1B, ZB-H1 and interleaved (v in VIRTUAL_STAGES, when the
 * micro-batches are a multiple of pp and the layers fill pp*v chunks, the ends allowed one layer less).
 * ZB-V is evaluated only when pinned (--schedule zb-v), where the layers fill its two chunks a stage: its
 * order is found per (pp, micro-batches, pass lengths) by playing it (cost/zb-v.ts), which across every
 * mesh of a search took `plan --model llama3-70b --gpus 64` from 0.6 to 1.3 s and 405B on 16,384 GPUs to
 * 2.6 s (2026-11-24), past the speed targets.
 * GPipe and naive model parallelism are evaluated only when pinned: the cost model makes GPipe as fast as 1F1B with more memory in flight, and
 * naive model parallelism idles (p-1)/p of the time.
 */
function schedules(model: ModelSpec, pp: number, m: number, pinned: PlanInput): [Schedule, number][] {
  const interleaved = (): [Schedule, number][] => {
    if (pp === 1 || m % pp !== 0) return [];
    const vs = pinned.virtualStages === undefined ? VIRTUAL_STAGES : [pinned.virtualStages];
    const fits = vs.filter((v) => v > 1 && layoutExists(model.layers, pp, v));
    const tried = pinned.virtualStages === undefined && fits.includes(4) ? fits.filter((v) => v !== 3) : fits;
    return tried.map((v): [Schedule, number] => ["interleaved", v]);
  };
  // ZB-V: two chunks per stage, where the layers fill them (the first stage may hold one or two less).
  const vShape = (): [Schedule, number][] => (pp > 1 && layoutExists(model.layers, pp, ZB_V_CHUNKS, "zb-v") ? [["zb-v", ZB_V_CHUNKS]] : []);
  const schedule = pinnedSchedule(pinned);
  if (schedule === "interleaved") return interleaved();
  if (schedule === "zb-v") return vShape();
  // a pinned pipeline schedule asks for a pipeline (resolvePlan refuses it with one stage)
  if (schedule !== undefined) return schedule === "1f1b" || pp > 1 ? [[schedule, 1]] : [];
  // a pinned --vpp 1 rules the interleaved schedule and ZB-V out
  if (pinned.virtualStages === 1) return pp === 1 ? [["1f1b", 1]] : [["1f1b", 1], ["zb-h1", 1]];
  if (pp === 1) return [["1f1b", 1]];
  return [["1f1b", 1], ["zb-h1", 1], ...interleaved()];
}

/**
 * The shard groups a candidate tries: a pinned group where it divides dp * cp (not with ZeRO 0, which shards
 * nothing, nor with ep > 1), else whole-group sharding only. The search does not explore hybrid sharding by
 * itself: in the cost model's ring collectives it moves as many bytes across nodes as whole-group sharding
 * when gradients are reduced in fp32 (the default here for bf16), so on its own it would only add memory
 * and optimizer work; pin it (--shard-group) to weigh a framework's choice.
 */
function shardGroupsFor(zero: number, ranks: number, ep: number, pinned: number | undefined): (number | undefined)[] {
  if (pinned === undefined || pinned === ranks) return [undefined];
  return zero >= 1 && ep === 1 && pinned > 1 && ranks % pinned === 0 ? [pinned] : [];
}
