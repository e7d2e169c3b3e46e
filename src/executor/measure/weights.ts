import type { ModelSpec } from "../../spec/types.js";
import { joinRanks, modelUnits, unitSlots, type UnitSlots } from "../model/layout.js";
import type { RankResult } from "../run/job.js";

/**
 * Reassembles the full model from the blocks ranks return (data-parallel blocks along each unit's flat
 * vector, tensor-parallel blocks along each tensor's split axis; parameter servers' blocks along the
 * whole model's flat vector), and compares two models.
 */
export type Weights = Map<string, Float32Array>;

function splitUnit(slots: UnitSlots, flat: Float32Array): Map<string, Float32Array> {
  return new Map(slots.tensors.map((t) => [t.spec.name, flat.subarray(t.offset, t.offset + t.size)]));
}

/**
 * A unit's flat vector from its blocks: `size` floats, or more where the blocks run past it (the head's
 * copy of a tied embedding, after its own tensors, which splitUnit leaves out: the copy trains as the
 * embedding does, and the losses would show it if it did not).
 */
function fromBlocks(blocks: { first: number; data: Float32Array }[], size: number): Float32Array {
  const flat = new Float32Array(Math.max(size, ...blocks.map((b) => b.first + b.data.length)));
  for (const b of blocks) flat.set(b.data, b.first);
  return flat;
}

/** `expertBlocks`: the plan's ep (each member's experts are a unit of their own, layout.ts modelUnits). */
export function assembleWeights(model: ModelSpec, tp: number, results: readonly RankResult[], expertBlocks = 1): Weights {
  const out: Weights = new Map();
  const serverBlocks = results.flatMap((r) => r.weights.filter((w) => w.unit === "server"));
  const units = modelUnits(model, expertBlocks);
  if (serverBlocks.length > 0) {
    const slots = units.map((u) => unitSlots(u, 1));
    const flat = fromBlocks(serverBlocks, slots.reduce((a, s) => a + s.size, 0));
    let at = 0;
    for (const s of slots) {
      for (const [name, data] of splitUnit(s, flat.subarray(at, at + s.size))) out.set(name, data.slice());
      at += s.size;
    }
    return out;
  }
  for (const unit of units) {
    const slots = unitSlots(unit, tp);
    const perRank = Array.from({ length: tp }, (_, r) => {
      const blocks = results.flatMap((res) => res.weights.filter((w) => w.unit === unit.name && w.tpRank === r));
      return splitUnit(slots, fromBlocks(blocks, slots.size));
    });
    for (const t of slots.tensors) out.set(t.spec.name, joinRanks(perRank.map((m) => m.get(t.spec.name)!), t.spec));
  }
  return out;
}

/** Largest absolute difference over all weights, and where. */
export function maxWeightDifference(a: Weights, b: Weights): { value: number; tensor: string } {
  let value = 0;
  let tensor = "";
  for (const [name, x] of a) {
    const y = b.get(name);
    if (y === undefined || y.length !== x.length) return { value: Infinity, tensor: name };
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(x[i]! - y[i]!);
      if (d > value) {
        value = d;
        tensor = name;
      }
    }
  }
  return { value, tensor };
}

/** Per-step loss of the whole run: the sum of the loss-holding ranks' shares. */
export function stepLosses(results: readonly RankResult[]): number[] {
  const steps = Math.max(0, ...results.map((r) => r.steps.length));
  return Array.from({ length: steps }, (_, s) => results.filter((r) => r.holdsLoss).reduce((a, r) => a + (r.steps[s]?.loss ?? 0), 0));
}
