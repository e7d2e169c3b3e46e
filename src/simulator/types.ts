import type { ChunkEndSeconds } from "../planner/cost/stages.js";
import type { VPassRatios } from "../planner/cost/zb-v.js";
import type { Schedule } from "../spec/types.js";

/**
 * The simulator's vocabulary. A plan is represented by one rank per pipeline stage: data-, tensor- and
 * context-parallel replicas of a stage run the same operations at the same times (they are symmetric), so
 * a collective among them is one operation on the stage's stream. Parameter servers break that symmetry
 * (their links serve workers one at a time), so there every worker and every server is its own rank.
 */

/** Streams of one rank; an operation runs on one stream of one rank (and, for a transfer, a second member). */
export const Stream = {
  /** Forward, backward, weight-gradient and optimizer kernels. */
  compute: 0,
  /** Tensor-, context- and expert-parallel collectives, which the compute waits for. */
  collective: 1,
  /** Data-parallel reduction and gathering (and parameter-server pushes and pulls). */
  dp: 2,
  /** Pipeline sends (activations forward, gradients backward). */
  send: 3,
  /** Pipeline receives; on a server, its network link, served first come first served. */
  recv: 4,
} as const;
export const STREAMS = 5;

/** What an operation is. */
export const OpKind = {
  forward: 0,
  /** The backward: input gradient only (ZB-H1's B) or input and weight gradient together; with any recompute. */
  backward: 1,
  /** ZB-H1's weight-gradient pass W. */
  weight: 2,
  optimizer: 3,
  tp: 4,
  cp: 5,
  ep: 6,
  /** One activation or gradient between two stages. */
  pp: 7,
  dpGather: 8,
  dpReduce: 9,
  psPush: 10,
  psPull: 11,
  psUpdate: 12,
  /** The step's global synchronisation before the optimizer (gradient-norm all-reduce). */
  barrier: 13,
} as const;
export type OpKindCode = (typeof OpKind)[keyof typeof OpKind];

/** `index` of a pp op: a send of an activation (0) or a gradient (1), or a blocking receive of one (2, 3). */
export const SEND_ACTIVATION = 0;
export const SEND_GRADIENT = 1;
export const RECV_ACTIVATION = 2;
export const RECV_GRADIENT = 3;
/** `index` of the pp op that sums a tied embedding's two copies' gradients (once per step). */
export const TIED_SYNC = 4;

/** Seconds per micro-batch through a whole stage (all its virtual chunks), exposed parts only for tp/cp/ep. */
export interface PassSeconds {
  readonly forward: number;
  readonly backward: number;
}

/** Data-parallel traffic of one stage, as the simulator overlaps it. */
export interface SimDp {
  /** Once per step, in buckets behind the last backward of each chunk (gradient all-reduce / reduce-scatter). */
  readonly reduceOnceSeconds: number;
  /** Once per step, in buckets ahead of the first forward of each chunk (ZeRO-1/2 parameter all-gather). */
  readonly gatherOnceSeconds: number;
  /** Every micro-batch, in buckets ahead of each forward (ZeRO-3 parameter gather, prefetched). */
  readonly gatherForwardSeconds: number;
  /** Every micro-batch, in buckets ahead of each backward (ZeRO-3 gathers the parameters again). */
  readonly gatherBackwardSeconds: number;
  /** Every micro-batch, in buckets behind each gradient-producing pass (ZeRO-2/3 reduce-scatter). */
  readonly reducePerMicroBatchSeconds: number;
  /** Buckets (layer groups) each chunk's traffic is split into; at least 1. */
  readonly buckets: number;
}

/** Activation memory of one stage, in the cost model's terms (src/planner/cost/memory.ts stageActivationBytes). */
export interface SimMemory {
  /** What one micro-batch leaves behind on this stage (all chunks) until its backward frees it. */
  readonly perMicroBatchBytes: number;
  /** Held only while a backward runs (a fully recomputed layer's rebuilt activations). */
  readonly backwardTransientBytes: number;
  /** Last stage: the logits of a micro-batch, from its forward to its backward. */
  readonly lossBytes: number;
  /** A split backward (ZB-H1): what a micro-batch keeps from its B to its W (all chunks); absent: none. */
  readonly weightGradInputBytes?: number;
  /**
   * Held while this stage's optimizer step runs: the fp32 copy of its 16-bit gradients (StageCost
   * optimizerStepBytes, src/planner/cost/memory.ts optimizerStepCopyBytes); absent: none.
   */
  readonly optimizerStepBytes?: number;
}

export interface SimStage {
  readonly forwardSeconds: number;
  readonly backwardInputSeconds: number;
  readonly backwardWeightSeconds: number;
  readonly recomputeSeconds: number;
  readonly tp: PassSeconds;
  readonly cp: PassSeconds;
  readonly ep: PassSeconds;
  readonly dp: SimDp;
  /**
   * Once per step, after this stage's last backward and its data-parallel reduction and before the
   * optimizer: its part in the sum of a tied embedding's two copies' gradients with the other stage that
   * has one (planner/cost/tied.ts; the first stage and the head's). Absent or 0: none.
   */
  readonly tiedSyncSeconds?: number;
  /**
   * The part of the pass seconds above that the model's ends take, by the chunk that runs each
   * (planner/cost/stages.ts StageCost.ends): with several chunks, each gets 1/v of the rest and its own
   * ends. Absent: every chunk 1/v of the stage.
   */
  readonly ends?: readonly ChunkEndSeconds[];
  /**
   * Once per step, the extra seconds of the first forward of each chunk (index): new weight tensors' first
   * use (planner/cost/stages.ts StageCost.firstForwardSeconds). Absent: none.
   */
  readonly firstForwardSeconds?: readonly number[];
  readonly optimizerSeconds: number;
  readonly memory: SimMemory;
}

/** Data parallelism through parameter servers: workers push gradients to and pull weights from K servers. */
export interface SimParameterServers {
  readonly workers: number;
  readonly servers: number;
  /** One worker's push of its gradient shard to one server (one message on both links). */
  readonly pushSeconds: number;
  /** One worker's pull of one server's weight shard. */
  readonly pullSeconds: number;
  /** A server applying the update to its shard (0: the cost model does not price it). */
  readonly updateSeconds: number;
  readonly asynchronous: boolean;
  /** Steps a worker's weights may lag (asynchronous only). */
  readonly staleness: number;
}

/** Everything the simulator needs: build it from the cost model (from-costs.ts) or by hand in tests. */
export interface SimInput {
  readonly schedule: Schedule;
  readonly microBatches: number;
  readonly virtualStages: number;
  /** One per pipeline stage. */
  readonly stages: readonly SimStage[];
  /** One activation (or gradient) between adjacent stages. */
  readonly ppTransferSeconds: number;
  /**
   * Each transfer holds both stages' compute streams: the send after its pass, and a receive of the same
   * length before the pass that needs the data (DeepSpeed's pipeline engine).
   */
  readonly blockingSends?: boolean;
  /** The once-per-step reduction runs whole after the last pass, the gather after the optimizer (DeepSpeed's pipeline engine). */
  readonly dpExposed?: boolean;
  /** Every data-parallel collective runs in line with the passes, holding the stage's compute (the executor). */
  readonly dpBlocking?: boolean;
  readonly parameterServers?: SimParameterServers;
  /** Display names of the stages (e.g. their layers); defaults to "stage i". */
  readonly stageNames?: readonly string[];
  /**
   * ZB-V: the pass lengths its order is found for (planner/cost/zb-v.ts); from-costs gives the plan's
   * (planVPassRatios, as the cost model's memory reads them). Absent: from the stages' mean passes.
   */
  readonly vPassRatios?: VPassRatios;
}

/** Every operation of a simulated step, column by column (typed arrays; index = operation id). */
export interface OpTable {
  readonly size: number;
  readonly kind: Uint8Array;
  readonly rank: Int32Array;
  readonly stream: Uint8Array;
  /** The second member's resource (rank * STREAMS + stream) of a transfer or push/pull, or -1. */
  readonly peer: Int32Array;
  readonly microBatch: Int32Array;
  readonly chunk: Int32Array;
  /** Piece of a split pass or dp bucket; a transfer's kind (SEND_ACTIVATION .. RECV_GRADIENT); a PS op's step. */
  readonly index: Int32Array;
  readonly startSeconds: Float64Array;
  readonly endSeconds: Float64Array;
}

export type RankRole = "stage" | "worker" | "server";

export interface RankTimeline {
  readonly name: string;
  readonly role: RankRole;
  /** Busy seconds per stream (index = Stream value). */
  readonly busySeconds: readonly number[];
  /** Seconds in the simulated span when neither compute nor the collectives it waits for run. */
  readonly idleSeconds: number;
  /** idleSeconds over the simulated span. */
  readonly idleFraction: number;
  readonly peakActivationBytes: number;
  /** Activation memory over time: the value from each time on (a step function). */
  readonly memory: MemorySeries;
  /**
   * The optimizer step's transient memory over time (the fp32 copy of 16-bit gradients while the step
   * runs), beside the activations; empty where the step copies nothing.
   */
  readonly optimizerStepMemory: MemorySeries;
}

/** Bytes held from each time on (a step function). */
export interface MemorySeries {
  readonly timeSeconds: Float64Array;
  readonly bytes: Float64Array;
}

/**
 * The step's time in the contract's terms: the critical rank's own compute and blocking collectives, the
 * optimizer, pipeline-transfer and data-parallel segments of the critical path, and the bubble (what is
 * left: the critical rank waiting for other stages' passes). The entries add up to stepSeconds.
 */
export interface ExposedSeconds {
  readonly computeSeconds: number;
  readonly tpSeconds: number;
  readonly cpSeconds: number;
  readonly epSeconds: number;
  readonly ppSeconds: number;
  readonly dpSeconds: number;
  readonly optimizerSeconds: number;
  /** The critical rank waiting for other stages' passes (the pipeline bubble). */
  readonly bubbleSeconds: number;
}

export interface Timeline {
  readonly schedule: Schedule;
  /** One training step: the critical path (for asynchronous parameter servers, the steady-state period). */
  readonly stepSeconds: number;
  /** End of the last simulated operation. */
  readonly spanSeconds: number;
  /** Steps simulated (1, or several for asynchronous parameter servers). */
  readonly steps: number;
  readonly ranks: readonly RankTimeline[];
  /** The rank whose compute sets the pace (largest busy time); the breakdown is from its point of view. */
  readonly criticalRank: number;
  readonly exposed: ExposedSeconds;
  /** Operations on the critical path, in time order. */
  readonly criticalPath: Int32Array;
  readonly ops: OpTable;
  /** Events processed by the engine (one completion per operation; starts happen inline). */
  readonly events: number;
}
