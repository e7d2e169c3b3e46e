import type { Tensor } from "@tensorflow/tfjs";
import type { Grads, ModelContext, UnitParams } from "./context.js";
import { embedBackward, embedForward, headBackward, headForward, type HeadSaved } from "./ends.js";
import { layerBackward, layerForward, type LayerSaved } from "./layer.js";
import type { UnitSpec } from "./layout.js";

/**
 * Forward and backward of one model chunk (a pipeline stage's slice of units) for one micro-batch.
 * Parameters come through a provider so that ZeRO-3 can gather a unit's weights just before use and drop
 * them after; gradients leave unit by unit so that ZeRO-2/3 can reduce-scatter them at once.
 */
export interface ParamProvider {
  acquire(unit: UnitSpec): UnitParams;
  release(unit: UnitSpec): void;
  /** Takes ownership of the gradient tensors. */
  accept(unit: UnitSpec, grads: Grads): void;
}

/** This rank's tokens of one micro-batch, position-major: row = position * batch + sequence. */
export interface MicroBatchTokens {
  readonly ids: Int32Array;
  readonly targets: Int32Array;
}

type Saved = { kind: "embed" } | { kind: "layer"; saved: LayerSaved } | { kind: "head"; saved: HeadSaved };

export interface ChunkActivations {
  readonly saved: readonly Saved[];
  /** Every tensor kept for the backward (released after it). */
  readonly kept: Tensor[];
}

export interface ChunkForwardResult {
  /** The activation for the next chunk; null after the head. */
  readonly output: Tensor | null;
  /** This rank's share of the loss (0 unless the chunk ends with the head). */
  readonly loss: number;
  readonly activations: ChunkActivations;
}

/**
 * `input` is null for the chunk that starts with the embedding; it is kept by the first layer (the
 * caller must not dispose it). `makeContext` builds the micro-batch's context whose `save` adds to `kept`.
 */
export function forwardChunk(
  units: readonly UnitSpec[], params: ParamProvider, input: Tensor | null, data: MicroBatchTokens,
  makeContext: (kept: Tensor[]) => ModelContext,
): ChunkForwardResult {
  const kept: Tensor[] = [];
  const ctx = makeContext(kept);
  const saved: Saved[] = [];
  let x = input;
  let loss = 0;
  for (const unit of units) {
    const p = params.acquire(unit);
    if (unit.kind === "embed") {
      x = embedForward(ctx, p, data.ids);
      saved.push({ kind: "embed" });
    } else if (unit.kind === "layer") {
      const r = layerForward(ctx, p, unit.layer, x!);
      x = r.out;
      saved.push({ kind: "layer", saved: r.saved });
    } else {
      const r = headForward(ctx, p, x!, data.targets);
      loss = r.loss;
      x = null;
      saved.push({ kind: "head", saved: r.saved });
    }
    params.release(unit);
  }
  return { output: x, loss, activations: { saved, kept } };
}

/**
 * Backward through the chunk, last unit first. `dout` is null for the chunk that ends with the head.
 * Returns the gradient of the chunk's input (null for the chunk that starts with the embedding) and
 * disposes `dout`; the caller releases the kept activations.
 */
export function backwardChunk(
  units: readonly UnitSpec[], params: ParamProvider, acts: ChunkActivations, dout: Tensor | null, data: MicroBatchTokens,
  ctx: ModelContext,
): Tensor | null {
  let d = dout;
  for (let i = units.length - 1; i >= 0; i--) {
    const unit = units[i]!;
    const s = acts.saved[i]!;
    const p = params.acquire(unit);
    let grads: Grads;
    let next: Tensor | null;
    if (s.kind === "head") {
      const r = headBackward(ctx, p, s.saved, data.targets);
      grads = r.grads;
      next = r.dx;
    } else if (s.kind === "layer") {
      const r = layerBackward(ctx, p, unit.layer, s.saved, d!);
      grads = r.grads;
      next = r.dx;
    } else {
      grads = embedBackward(ctx, p, data.ids, d!);
      next = null;
    }
    d?.dispose();
    d = next;
    params.release(unit);
    params.accept(unit, grads);
  }
  return d;
}
