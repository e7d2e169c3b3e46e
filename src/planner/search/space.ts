import { InputError } from "../../spec/errors.js";
import { DEFAULT_BATCH_TOKENS, type PlanInput } from "../../spec/plan.js";
import type { ClusterShape, ModelSpec, Recompute, Schedule, ZeroStage } from "../../spec/types.js";

export function divisorsOf(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

/** The global batch a search holds fixed, so that every plan does the same work per step. */
export function searchGlobalBatch(model: ModelSpec, pinned: PlanInput): number {
  const seq = pinned.seqLen ?? model.seqLen;
  return pinned.globalBatch ?? model.globalBatch ?? Math.max(1, Math.round(DEFAULT_BATCH_TOKENS / seq));
}

const MICRO_BATCHES = [1, 2, 4, 8, 16];
const VIRTUAL_STAGES = [2, 4];

/**
 * Every combination of knobs the cost model supports, restricted by the model's shape (heads, KV heads,
 * MLP width by tp; layers by pp*v; sequence by cp; experts by ep) and by the pinned flags. Yields plan
 * inputs; resolvePlan still validates each.
 */
export function* candidates(model: ModelSpec, shape: ClusterShape, pinned: PlanInput): Generator<PlanInput> {
  const gpus = shape.gpus;
  const seqLen = pinned.seqLen ?? model.seqLen;
  const globalBatch = searchGlobalBatch(model, pinned);
  const pick = <T>(value: T | undefined, all: readonly T[]): readonly T[] => (value === undefined ? all : [value]);
  if (pinned.parameterServers !== undefined && pinned.parameterServers > 0) {
    throw new InputError({ code: "unsupported", field: "--ps", value: pinned.parameterServers, valid: "meshplan simulate --ps K", reason: "the search covers collective-based plans; evaluate parameter-server plans with simulate" });
  }
  for (const tp of pick(pinned.tp, divisorsOf(gpus))) {
    if (model.attentionHeads % tp !== 0 || model.ffnHiddenSize % tp !== 0) continue;
    if (model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) continue;
    for (const pp of pick(pinned.pp, divisorsOf(gpus / tp))) {
      if (pinned.layersPerStage === undefined && model.layers % pp !== 0) continue;
      for (const cp of pick(pinned.cp, divisorsOf(gpus / (tp * pp)))) {
        if (seqLen % cp !== 0) continue;
        const dp = gpus / (tp * pp * cp);
        if (pinned.dp !== undefined && pinned.dp !== dp) continue;
        const eps = model.moe === undefined ? [1] : divisorsOf(model.moe.experts).filter((e) => (dp * cp) % e === 0);
        for (const ep of pick(pinned.ep, eps)) {
          for (const microBatch of pick(pinned.microBatch, MICRO_BATCHES)) {
            if (globalBatch % (dp * microBatch) !== 0) continue;
            const m = globalBatch / (dp * microBatch);
            for (const [schedule, virtualStages] of schedules(model, pp, m, pinned)) {
              for (const zero of pick(pinned.zero as ZeroStage | undefined, [0, 1, 2, 3] as ZeroStage[])) {
                for (const recompute of pick<Recompute>(pinned.recompute, ["none", "selective", "full"])) {
                  for (const sequenceParallel of tp === 1 ? [false] : pick(pinned.sequenceParallel, [true, false])) {
                    yield { ...pinned, tp, pp, cp, dp, ep, microBatch, globalBatch, seqLen, schedule, virtualStages, zero, recompute, sequenceParallel };
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

function schedules(model: ModelSpec, pp: number, m: number, pinned: PlanInput): [Schedule, number][] {
  const out: [Schedule, number][] = [];
  const wanted = (s: Schedule) => pinned.schedule === undefined || pinned.schedule === s;
  if (pp === 1) {
    if (wanted("1f1b") || pinned.schedule === undefined) out.push([pinned.schedule ?? "1f1b", 1]);
    return out;
  }
  if (wanted("1f1b")) out.push(["1f1b", 1]);
  if (wanted("zb-h1")) out.push(["zb-h1", 1]);
  if (wanted("gpipe") && pinned.schedule === "gpipe") out.push(["gpipe", 1]);
  if (wanted("naive") && pinned.schedule === "naive") out.push(["naive", 1]);
  if (wanted("interleaved") && m % pp === 0) {
    for (const v of pinned.virtualStages === undefined ? VIRTUAL_STAGES : [pinned.virtualStages]) {
      if (model.layers % (pp * v) === 0) out.push(["interleaved", v]);
    }
  }
  return out;
}
