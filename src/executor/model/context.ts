import type { Tensor } from "@tensorflow/tfjs";
import type { ModelSpec } from "../../spec/types.js";
import type { Tf } from "./ops.js";

/**
 * What the model code needs from its parallel groups. Rows are tokens laid out position-major
 * ([positions, batch] flattened, Megatron's [s, b, h]), so a sequence split is a contiguous block of rows.
 * Every operation returns a new tensor and leaves its input alone. `purpose` names why the collective
 * runs, for the byte accounting (src/executor/README.md).
 */
export interface GroupOps {
  readonly size: number;
  readonly rank: number;
  allReduce(x: Tensor, purpose: string): Tensor;
  allReduceMax(x: Tensor, purpose: string): Tensor;
  /** Concatenates every member's rows in member order. */
  allGather(x: Tensor, purpose: string): Tensor;
  /** Sums over members and keeps this member's block of rows. */
  reduceScatter(x: Tensor, purpose: string): Tensor;
}

/**
 * An expert-parallel group (model/moe.ts): each member holds a block of every layer's experts and sends
 * each token copy to the member that holds its expert.
 */
export interface ExpertGroup {
  readonly size: number;
  readonly rank: number;
  /** Row block k of x goes to member k; row block k of the result came from member k (size divides the rows). */
  allToAll(x: Tensor, purpose: string): Tensor;
}

/** A group of one: every collective is the identity. */
export function soloGroup(tf: Tf): GroupOps {
  const same = (x: Tensor) => tf.clone(x);
  return { size: 1, rank: 0, allReduce: same, allReduceMax: same, allGather: same, reduceScatter: same };
}

/** Parameters of one unit on this rank, by full tensor name. */
export interface UnitParams {
  get(name: string): Tensor;
  maybe(name: string): Tensor | undefined;
}

/** Where the current micro-batch sits and who shares its work. */
export interface ModelContext {
  readonly tf: Tf;
  readonly model: ModelSpec;
  /** Sequences per micro-batch. */
  readonly batch: number;
  /** Tokens of each sequence on this rank (seqLen / cp). */
  readonly tokens: number;
  /** Position of this rank's first token (cp rank * tokens). */
  readonly pos0: number;
  /** Tokens in the whole step (globalBatch * seqLen): the loss is the sum over them divided by this. */
  readonly stepTokens: number;
  readonly tp: GroupOps;
  readonly cp: GroupOps;
  /** Megatron sequence parallel: the residual stream is split over the tp ranks by position. */
  readonly sp: boolean;
  /**
   * Positions of each sequence a mixture of experts' routing group holds (model/routing.ts: an expert's
   * capacity is counted per group): the plan run's (layout.ts routingGroupTokens), in the one-rank run that
   * checks it too; absent: `tokens`.
   */
  readonly routingTokens?: number;
  /** Expert parallel (a mixture of experts' experts split over its members); absent: every expert here. */
  readonly ep?: ExpertGroup;
  /** Keeps a tensor for the backward (counted as activation memory) and returns it. */
  save(t: Tensor): Tensor;
  /**
   * Selective recomputation (Korthikanti et al. 2022, section 4.2): the attention scores are not kept; the
   * backward computes them again from the kept Q and K.
   */
  readonly recomputeAttention?: boolean;
  /** Full recomputation of some layers; absent: none. */
  readonly fullRecompute?: FullRecompute;
  /**
   * ZB-H1's split backward (Qi et al. 2023): where present, the backward (B) computes input gradients only
   * and leaves each weight gradient to the later W pass, keeping what it needs; absent, both at once.
   */
  readonly weights?: WeightDeferral;
}

/**
 * Full recomputation: the layers (by index) whose forward keeps only its input and runs again in the
 * backward; `keepIn` and `release` hold that rebuilt forward's tensors for the one layer's backward
 * (counted as activation memory while held).
 */
export interface FullRecompute {
  readonly layers: ReadonlySet<number>;
  keepIn(t: Tensor, into: Tensor[]): Tensor;
  release(tensors: readonly Tensor[]): void;
}

/** Where a split backward leaves its weight gradients for the W pass. */
export interface WeightDeferral {
  /** Keeps `t` until the W pass (counted as activation memory unless it already is one) and returns it. */
  keep(t: Tensor): Tensor;
  /** The gradient `name`, to be computed in the W pass from kept tensors. */
  later(name: string, compute: () => Tensor): void;
}

/** Before a column-parallel product under sequence parallel: every tp rank's rows (else x as it is). */
export function gatherSp(ctx: ModelContext, x: Tensor, purpose: string): Tensor {
  return ctx.sp ? ctx.tp.allGather(x, purpose) : x;
}

/** After a row-parallel product: reduce-scatter (SP) or all-reduce the partial sums over tp. */
export function reduceRow(ctx: ModelContext, x: Tensor, purpose: string): Tensor {
  return ctx.sp ? ctx.tp.reduceScatter(x, purpose) : ctx.tp.allReduce(x, purpose);
}

/** The block of positions this rank's residual stream holds: all `tokens`, or 1/tp of them under SP. */
export function residualPositions(ctx: ModelContext): { first: number; count: number } {
  if (!ctx.sp) return { first: ctx.pos0, count: ctx.tokens };
  const count = ctx.tokens / ctx.tp.size;
  return { first: ctx.pos0 + ctx.tp.rank * count, count };
}

export type Grads = Map<string, Tensor>;
