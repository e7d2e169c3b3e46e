import type { ModelSpec, Plan } from "../../spec/types.js";

/**
 * Micro-batches per fit step: as many as the plans checked against the fit run per rank (tiny-gpt's
 * global batch 8: 4 to 8), so that what a step pays once (the update) and per micro-batch are in the
 * proportion those plans have.
 */
export const FIT_MICRO_BATCHES = 8;

/**
 * Sequences per step `meshplan execute` runs where neither --global-batch nor the model file gives a batch
 * (a Hugging Face config.json has none): tiny-gpt's (models/models/tiny-gpt.json), the batch the executor's
 * tests and calibrate's fit steps run, rounded up as resolvePlan rounds any default. The planner's default
 * (spec/plan.ts DEFAULT_BATCH_TOKENS, 4M tokens: 131,072 sequences of 32) is a cluster's batch; on this
 * machine's cores one step of tiny-gpt at that batch on dp2 takes about 22 minutes (131,072 passes a rank
 * at about 100 a second, measured), the whole run with its 27 steps and its one-rank reference most of a day.
 * Here, not in execute.ts, so that the command line's help reads it without loading the executor.
 */
export const EXECUTE_DEFAULT_GLOBAL_BATCH = FIT_MICRO_BATCHES;

/**
 * The one-rank plan of calibrate's fit steps, and of the speed probe a profile names (DeviceProfile
 * concurrency.probe), which `readProfile` checks a saved profile's probe against. Kept apart from
 * calibrate.ts, which loads the executor, so that reading a profile does not.
 */
export function fitPlan(layers: number, seqLen: number, globalBatch: number): Plan {
  return {
    dp: 1, tp: 1, pp: 1, cp: 1, ep: 1, sequenceParallel: false, virtualStages: 1, microBatch: 1, globalBatch, seqLen,
    schedule: "1f1b", zero: 0, recompute: "none", precision: "bf16", layersPerStage: [layers], recomputeLayersPerStage: [0],
    parameterServers: 0, asynchronous: false, staleness: 0, flashAttention: false, fp32Gradients: true,
  };
}

/**
 * The experts calibrate gives a fit shape where it measures a mixture of experts (the routing's cost,
 * measure/routing.ts; the waits at expert-parallel all-to-alls, waits.ts): tiny-moe's
 * (models/models/tiny-moe.json), 4 experts, top 2.
 */
export const FIT_EXPERTS = { experts: 4, topK: 2 } as const;

/** A fit shape's model with FIT_EXPERTS in every layer's MLP. */
export function withFitExperts(model: ModelSpec): ModelSpec {
  return { ...model, name: `${model.name}-moe`, moe: FIT_EXPERTS };
}
