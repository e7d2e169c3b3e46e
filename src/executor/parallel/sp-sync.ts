import type { Group } from "../comm/group.js";
import type { UnitSlots } from "../model/layout.js";

/**
 * Under sequence parallel, the weights every tp rank holds whole (norms, position embeddings, biases of
 * row-parallel layers) see only the rank's block of positions, so each rank's gradient is partial and the
 * tp group sums them once per step (Megatron-LM finalize_model_grads: _allreduce_layernorm_grads). Done
 * on the block of the gradient this rank owns after the data-parallel reduction.
 */
export function replicatedIndices(slots: UnitSlots, owned: { first: number; end: number }): number[] {
  const out: number[] = [];
  for (const t of slots.tensors) {
    if (t.spec.splitAxis !== null) continue;
    const first = Math.max(t.offset, owned.first);
    const end = Math.min(t.offset + t.size, owned.end);
    for (let i = first; i < end; i++) out.push(i - owned.first);
  }
  return out;
}

export function syncReplicatedGradients(tp: Group, layout: readonly { slots: UnitSlots; owned: { first: number; end: number } }[], grads: readonly Float32Array[]): void {
  const indices = layout.map((u) => replicatedIndices(u.slots, u.owned));
  const total = indices.reduce((a, x) => a + x.length, 0);
  if (total === 0) return;
  const packed = new Float32Array(total);
  let at = 0;
  indices.forEach((idx, u) => idx.forEach((i) => (packed[at++] = grads[u]![i]!)));
  tp.allReduce(packed, "tp.sp-grad-sync");
  at = 0;
  indices.forEach((idx, u) => idx.forEach((i) => (grads[u]![i] = packed[at++]!)));
}
