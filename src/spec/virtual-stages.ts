import type { Plan, Schedule } from "./types.js";

/**
 * Where the model's pieces sit along a pipeline. The model is cut into pp * v virtual stages (chunks), in
 * model order; chunk c of stage s is
 * - virtual stage c p + s under every schedule but ZB-V (Megatron-LM's interleaved layout; v = 1 is the
 *   plain pipeline), so the output layer and the loss sit on the last stage;
 * - under ZB-V (Qi et al. 2023, the V-shaped zero-bubble schedule; two chunks per stage) virtual stage s
 *   for chunk 0 and 2p - 1 - s for chunk 1: the model runs down the stages and back up, so the first stage
 *   holds both the embedding and the output layer with the loss, and the last stage hands its first
 *   chunk's output to its own second chunk without a transfer.
 */
export type PipelineShape = Pick<Plan, "pp" | "virtualStages" | "schedule">;

export function isVShape(schedule: Schedule): boolean {
  return schedule === "zb-v";
}

/** Virtual stage (position along the model) of chunk `chunk` of stage `stage`. */
export function virtualStageOf(shape: PipelineShape, stage: number, chunk: number): number {
  const p = shape.pp;
  if (isVShape(shape.schedule)) return chunk === 0 ? stage : 2 * p - 1 - stage;
  return chunk * p + stage;
}

/** The stage and chunk that run virtual stage `vs`. */
export function chunkOfVirtual(shape: PipelineShape, vs: number): { stage: number; chunk: number } {
  const p = shape.pp;
  const chunk = Math.floor(vs / p);
  if (isVShape(shape.schedule)) return { stage: chunk === 0 ? vs : 2 * p - 1 - vs, chunk };
  return { stage: vs % p, chunk };
}

/** The stage that holds the output layer, the final norm and the loss. */
export function headStage(shape: PipelineShape): number {
  return isVShape(shape.schedule) ? 0 : shape.pp - 1;
}

export function holdsHead(shape: PipelineShape, stage: number): boolean {
  return stage === headStage(shape);
}

/**
 * Model ends (the embedding, the output layer) stage `stage` holds: 0, 1 or 2. A stage that holds an
 * end may take one layer less per end (spec/plan.ts fillsChunks).
 */
export function endsOnStage(shape: PipelineShape, stage: number): number {
  if (shape.pp < 2) return 0;
  return (stage === 0 ? 1 : 0) + (holdsHead(shape, stage) ? 1 : 0);
}

/**
 * Whether the output layer keeps its own copy of a tied embedding: when it sits on another stage than the
 * embedding (Megatron-LM keeps a copy on the last stage and all-reduces the two gradients).
 */
export function separateHeadCopy(shape: PipelineShape, tiedEmbeddings: boolean): boolean {
  return !tiedEmbeddings || headStage(shape) !== 0;
}

/**
 * Whether a tied embedding is held twice, by the first stage and by the output layer's on another stage,
 * whose two copies' gradients are then summed once per step (planner/cost/tied.ts, the executor's pair).
 */
export function tiedCopyOnHead(shape: PipelineShape, tiedEmbeddings: boolean): boolean {
  return tiedEmbeddings && headStage(shape) !== 0;
}

/**
 * Per micro-batch, the chunk boundaries of stage `stage` that cross to another stage: its sends of
 * activations (forward) and of gradients (backward). Each is also the receiving stage's receive. Under
 * ZB-V the turn of the V (the last stage's chunk 0 into its chunk 1) stays on the GPU.
 */
export function crossingsOfStage(shape: PipelineShape, stage: number): { forwardSends: number; backwardSends: number; forwardReceives: number; backwardReceives: number } {
  const last = shape.pp * shape.virtualStages - 1;
  let forwardSends = 0;
  let forwardReceives = 0;
  for (let c = 0; c < shape.virtualStages; c++) {
    const vs = virtualStageOf(shape, stage, c);
    if (vs < last && chunkOfVirtual(shape, vs + 1).stage !== stage) forwardSends++;
    if (vs > 0 && chunkOfVirtual(shape, vs - 1).stage !== stage) forwardReceives++;
  }
  // A gradient crosses each boundary an activation crossed, the other way.
  return { forwardSends, backwardSends: forwardReceives, forwardReceives, backwardReceives: forwardSends };
}

/** Boundaries between consecutive virtual stages that cross from one stage to another. */
export function crossingBoundaries(shape: PipelineShape): number {
  if (shape.pp < 2) return 0;
  const all = shape.pp * shape.virtualStages - 1;
  return isVShape(shape.schedule) ? all - 1 : all;
}

/** Does the schedule split the backward into B (input gradients) and W (weight gradients), Qi et al. 2023? */
export function splitsBackward(schedule: Schedule): boolean {
  return schedule === "zb-h1" || schedule === "zb-v";
}
