import { unitSlots, type UnitSpec } from "../model/layout.js";

/**
 * Where each unit's gradient lives in the data-parallel group's bucket (GroupSpec.bucketFloats: one
 * persistent region per member of the fabric), so that the backward accumulates straight into shared
 * memory and the reduction runs there in place (PyTorch DDP's gradient_as_bucket_view). A pure function of
 * the stage's units, so the coordinator (which sizes the fabric) and the rank (which accumulates) agree.
 *
 * - ZeRO 0/1: every unit has a region of its own, one after the other: its gradient accumulates over the
 *   step's micro-batches and is reduced once per step, and Adam reads every unit's result in place after
 *   all units are reduced, so no region may be reused within a step.
 * - ZeRO 2/3: a unit's gradient is reduce-scattered right after its backward, every micro-batch, and only
 *   the owned block is kept (outside the bucket), so the units share one region the size of the largest.
 *   Except the embedding of a tied model: the head's backward starts its gradient (the output layer is
 *   the word embedding) several units before the embedding's own backward ends it, so it has a region of
 *   its own after the shared one.
 */
export interface GradientBucket {
  /** Per unit, in the order given: the offset of its gradient in the bucket, in floats. */
  readonly offsets: readonly number[];
  /** Floats of the whole bucket. */
  readonly floats: number;
}

/** Regions start on 64-byte boundaries (16 floats), as the fabric's regions do. */
const ALIGN_FLOATS = 16;

function align(floats: number): number {
  return Math.ceil(floats / ALIGN_FLOATS) * ALIGN_FLOATS;
}

/** Whether the units hold a head without its own output layer and the embedding it is tied to. */
export function tiedOnStage(units: readonly UnitSpec[]): boolean {
  const head = units.find((u) => u.kind === "head");
  return head !== undefined && !head.tensors.some((t) => t.name === "head.w") && units.some((u) => u.kind === "embed");
}

export function gradientBucket(units: readonly UnitSpec[], tp: number, zero: 0 | 1 | 2 | 3): GradientBucket {
  const sizes = units.map((u) => unitSlots(u, tp).size);
  if (zero <= 1) {
    let at = 0;
    const offsets = sizes.map((n) => {
      const offset = at;
      at = align(at + n);
      return offset;
    });
    return { offsets, floats: at };
  }
  const tied = tiedOnStage(units);
  const own = (k: number) => tied && units[k]!.kind === "embed";
  const shared = align(Math.max(0, ...sizes.filter((_, k) => !own(k))));
  let at = shared;
  const offsets = sizes.map((n, k) => {
    if (!own(k)) return 0;
    const offset = at;
    at = align(at + n);
    return offset;
  });
  return { offsets, floats: at };
}
