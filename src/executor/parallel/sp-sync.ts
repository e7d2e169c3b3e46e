import type { Group } from "../comm/group.js";
import type { UnitSlots } from "../model/layout.js";

/**
 * Under sequence parallel, the weights every tp rank holds whole (norms, position embeddings, biases of
 * row-parallel layers) see only the rank's block of positions, so each rank's gradient is partial and the
 * tp group sums them once per step, after the data-parallel reduction, as Megatron-LM does
 * (core/distributed/finalize_model_grads.py _allreduce_layernorm_grads): the whole of every such gradient,
 * even where ZeRO leaves this rank only a shard of it (the entries outside the shard travel as zeros, as
 * Megatron's unowned main-grad entries do), so the bytes are the cost model's spReplicatedGradCost.
 */
/** Elements of a unit every tp rank holds whole. */
export function replicatedCount(slots: UnitSlots): number {
  return slots.tensors.reduce((a, t) => a + (t.spec.splitAxis === null ? t.size : 0), 0);
}

export function syncReplicatedGradients(tp: Group, layout: readonly { slots: UnitSlots; owned: { first: number; end: number } }[], grads: readonly Float32Array[]): void {
  const total = layout.reduce((a, u) => a + replicatedCount(u.slots), 0);
  if (total === 0) return;
  // Whole replicated tensors, unit by unit, in slot order; this rank fills the entries of its shard.
  const packed = new Float32Array(total);
  const positions: number[][] = [];
  let base = 0;
  layout.forEach((u, k) => {
    const pos: number[] = [];
    for (const t of u.slots.tensors) {
      if (t.spec.splitAxis !== null) continue;
      for (let i = 0; i < t.size; i++) {
        const at = t.offset + i;
        if (at >= u.owned.first && at < u.owned.end) {
          pos.push(base + i, at - u.owned.first);
          packed[base + i] = grads[k]![at - u.owned.first]!;
        }
      }
      base += t.size;
    }
    positions.push(pos);
  });
  tp.allReduce(packed, "tp.sp-grad-sync");
  positions.forEach((pos, k) => {
    for (let i = 0; i < pos.length; i += 2) grads[k]![pos[i + 1]!] = packed[pos[i]!]!;
  });
}
