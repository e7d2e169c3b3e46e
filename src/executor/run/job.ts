import type { ModelSpec, Plan } from "../../spec/types.js";
import type { KindTotals } from "../comm/traffic.js";
import type { CommKind } from "../comm/fabric.js";
import type { AdamConfig } from "../parallel/adam.js";
import type { Coords } from "../parallel/grid.js";
import type { StateBytes } from "../parallel/state.js";
import type { BackendChoice } from "./backend.js";
import type { FaultSpec } from "./protocol.js";
import type { SpeedProbeSpec } from "./speed-probe.js";

/** What every rank of one execution gets. */
export interface RankJob {
  readonly model: ModelSpec;
  readonly plan: Plan;
  readonly steps: number;
  readonly seed: number;
  readonly adam: AdamConfig;
  readonly backend: BackendChoice;
  /** Return the final weights (for the numerics check). */
  readonly collectWeights: boolean;
  readonly fault?: FaultSpec;
  /** Run this one-rank step between barriers before each step and time it (speed-probe.ts); absent: none. */
  readonly speedProbe?: SpeedProbeSpec;
  /**
   * A mixture of experts' routing group, in positions of a sequence (ModelContext.routingTokens): the
   * checked plan's (layout.ts routingGroupTokens), for its ranks and for the one-rank run that checks it.
   * Absent: each rank's own tokens.
   */
  readonly routingTokens?: number;
}

/** One step as one rank saw it. */
export interface StepRecord {
  /** This rank's share of the step's loss (sum over its tokens / tokens in the step). */
  readonly loss: number;
  /** From the step's start (all ranks leave a barrier together) to the end of the update. */
  readonly seconds: number;
  /** Each forward's and each backward's own seconds (communication excluded), in the order run. */
  readonly forwardPassSeconds: readonly number[];
  readonly backwardPassSeconds: readonly number[];
  readonly optimizerSeconds: number;
  /** The pipelined part: first pass's start to last pass's end, and the time blocked on neighbours in it. */
  readonly pipelineSpanSeconds: number;
  readonly pipelineIdleSeconds: number;
  /** The span on the wall clock every thread shares (performance.timeOrigin + now, ms). */
  readonly pipelineStartMs: number;
  readonly pipelineEndMs: number;
  readonly comm: Readonly<Record<CommKind, KindTotals>>;
  /** The passes' share of `comm`: its traffic before the gradient reduction and the update. */
  readonly passComm: Readonly<Record<CommKind, KindTotals>>;
  readonly commBytesByPurpose: Readonly<Record<string, number>>;
  /** The speed probe's step just before this step, every rank running it at once (RankJob.speedProbe). */
  readonly probeSeconds?: number;
}

export interface RankMemory {
  /** Peak of tf.memory().numBytes over the run, minus what was live before the model was built. */
  readonly peakTensorBytes: number;
  /** Peak of the activations kept for backward passes. */
  readonly peakActivationBytes: number;
  /** Model states (gradients and optimizer live outside TensorFlow.js, in float32 arrays). */
  readonly states: StateBytes;
}

/** A unit's block of final weights on one rank, for reassembling the full model. */
export interface WeightBlock {
  readonly unit: string;
  readonly tpRank: number;
  readonly first: number;
  readonly data: Float32Array;
}

export interface RankResult {
  readonly rank: number;
  readonly coords: Coords;
  readonly backend: string;
  /**
   * Whether every tensor- and context-parallel collective, every expert-parallel all-to-all and every ZeRO
   * weight gather of this rank read the other ranks' data straight from their shared wasm heaps (Group's
   * heap forms) rather than through copies into the fabric's slots; false for a rank in no such group.
   */
  readonly heapCollectives: boolean;
  /** Why this rank's wasm heap could not be shared, when it was asked to be. */
  readonly heapNote?: string;
  /** Whether this rank's step losses count towards the step loss (tp rank 0 of the stage with the head). */
  readonly holdsLoss: boolean;
  readonly steps: readonly StepRecord[];
  readonly memory: RankMemory;
  readonly weights: readonly WeightBlock[];
  /** Asynchronous parameter servers: how many updates old each applied gradient's weights were. */
  readonly staleness?: readonly number[];
}

/** The plan's collectives that can read the ranks' shared heaps, by name: tp, cp, ep's all-to-alls, and ZeRO's weight gathers. */
export function heapCollectiveKinds(plan: Plan): string[] {
  const zeroGathers = plan.zero >= 1 && plan.dp * plan.cp > 1 && plan.parameterServers === 0;
  return [plan.tp > 1 ? "tp" : "", plan.cp > 1 ? "cp" : "", plan.ep > 1 ? "ep all-to-all" : "", zeroGathers ? "ZeRO weight-gather" : ""].filter((x) => x !== "");
}

/** Whether a plan has collectives that can read the ranks' shared heaps. */
export function heapCollectivesIn(plan: Plan): boolean {
  return heapCollectiveKinds(plan).length > 0;
}
