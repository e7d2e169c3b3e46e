import type { Schedule } from "../../src/spec/types.js";
import type { SimDp, SimInput, SimStage } from "../../src/simulator/types.js";

export const NO_DP: SimDp = {
  reduceOnceSeconds: 0, gatherOnceSeconds: 0, gatherForwardSeconds: 0, gatherBackwardSeconds: 0, reducePerMicroBatchSeconds: 0, buckets: 1,
};

/** A synthetic stage: free communication and one byte of activations per micro-batch unless overridden. */
export function stage(o: Partial<SimStage> & { f?: number; b?: number; w?: number } = {}): SimStage {
  const { f = 1, b = 1, w = 1, ...rest } = o;
  return {
    forwardSeconds: f, backwardInputSeconds: b, backwardWeightSeconds: w, recomputeSeconds: 0,
    tp: { forward: 0, backward: 0 }, cp: { forward: 0, backward: 0 }, ep: { forward: 0, backward: 0 },
    dp: NO_DP, optimizerSeconds: 0,
    memory: { perMicroBatchBytes: 1, backwardTransientBytes: 0, lossBytes: 0 },
    ...rest,
  };
}

/** p identical stages, free communication. */
export function uniform(schedule: Schedule, p: number, m: number, v = 1, s: SimStage = stage()): SimInput {
  return { schedule, microBatches: m, virtualStages: v, stages: Array.from({ length: p }, () => s), ppTransferSeconds: 0 };
}

/** Seconds of one micro-batch through one stage: every pass and its blocking collectives. */
export function perMicroBatch(s: SimStage): number {
  return s.forwardSeconds + s.backwardInputSeconds + s.backwardWeightSeconds + s.recomputeSeconds +
    s.tp.forward + s.tp.backward + s.cp.forward + s.cp.backward + s.ep.forward + s.ep.backward;
}
