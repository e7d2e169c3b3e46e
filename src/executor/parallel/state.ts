import type { Tensor } from "@tensorflow/tfjs";
import type { Group } from "../comm/group.js";
import type { ParamProvider } from "../model/chunk.js";
import type { Grads, UnitParams } from "../model/context.js";
import { blockOf } from "../comm/fabric.js";
import { sliceForRank, unitSlots, type UnitSlots, type UnitSpec } from "../model/layout.js";
import { tensorFromShared, type Tf } from "../model/ops.js";
import { adamState, adamStep, type AdamConfig, type AdamState } from "./adam.js";

/**
 * The model states one rank holds, and ZeRO over the data-parallel group (Rajbhandari et al. 2020):
 * stage 0 keeps everything and all-reduces the gradients once per step; 1 shards the optimizer states
 * (reduce-scatter the gradients once, all-gather the weights after the update); 2 also the gradients
 * (reduce-scatter each unit's gradient right after its backward, every micro-batch); 3 also the weights
 * (all-gather each unit's weights before its forward and again before its backward). Each unit (the
 * embedding, a layer, the head) is one flat vector, sharded in blocks floor(j n / g) .. floor((j+1) n / g).
 *
 * Memory, float32: parameters (the tf tensors, or the ZeRO-3 shard) 4 bytes per element, gradients 4,
 * optimizer 12 (the master copy the update writes, Adam's m and v): the cost model's 2 + 4 + 12 of
 * mixed-precision Adam with fp32 gradients, with 4-byte instead of 2-byte weights.
 */
export interface StateBytes {
  readonly parametersBytes: number;
  readonly gradientsBytes: number;
  readonly optimizerBytes: number;
}

interface UnitState {
  readonly slots: UnitSlots;
  /** This rank's block of the unit's flat vector (all of it without sharding). */
  readonly owned: { readonly first: number; readonly end: number };
  /** ZeRO 0/1: the accumulated gradient; ZeRO 2/3: this micro-batch's, until reduce-scattered. */
  grad: Float32Array | undefined;
  /** ZeRO 2/3: the accumulated gradient of the owned block. */
  readonly ownedGrad: Float32Array | undefined;
  /** The master weights of the owned block. */
  readonly master: Float32Array;
  readonly adam: AdamState;
  /** ZeRO 3: the weight shard (gathered before use); else undefined. */
  readonly shard: Float32Array | undefined;
  tensors: Map<string, Tensor> | undefined;
}

export interface StateOptions {
  readonly tf: Tf;
  readonly units: readonly UnitSpec[];
  readonly tp: number;
  readonly tpRank: number;
  readonly zero: 0 | 1 | 2 | 3;
  /** The data-parallel group (dp x cp ranks holding the same weights); undefined alone. */
  readonly dp: Group | undefined;
  readonly initial: (name: string) => Float32Array;
  readonly adam: AdamConfig;
}

export class ModelState implements ParamProvider {
  private readonly units = new Map<string, UnitState>();
  private readonly owner = new Map<string, UnitState>();
  private step = 0;

  constructor(private readonly o: StateOptions) {
    const n = o.dp?.size ?? 1;
    const j = o.dp?.index ?? 0;
    for (const unit of o.units) {
      const slots = unitSlots(unit, o.tp);
      const flat = new Float32Array(slots.size);
      for (const t of slots.tensors) flat.set(sliceForRank(o.initial(t.spec.name), t.spec, o.tp, o.tpRank), t.offset);
      const owned = o.zero >= 1 ? blockOf(slots.size, n, j) : { first: 0, end: slots.size };
      const count = owned.end - owned.first;
      const state: UnitState = {
        slots, owned,
        grad: o.zero <= 1 ? new Float32Array(slots.size) : undefined,
        ownedGrad: o.zero >= 2 ? new Float32Array(count) : undefined,
        master: flat.slice(owned.first, owned.end),
        adam: adamState(count),
        shard: o.zero === 3 ? flat.slice(owned.first, owned.end) : undefined,
        tensors: undefined,
      };
      if (o.zero < 3) state.tensors = this.toTensors(slots, flat);
      this.units.set(unit.name, state);
      for (const t of slots.tensors) this.owner.set(t.spec.name, state);
    }
  }

  private toTensors(slots: UnitSlots, flat: Float32Array): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    // `flat` may be a view of a shared-memory slot (the ZeRO gathers): tensorFromShared copies where needed.
    for (const t of slots.tensors) m.set(t.spec.name, tensorFromShared(this.o.tf, flat.subarray(t.offset, t.offset + t.size), [...t.shape]));
    return m;
  }

  private state(unit: UnitSpec): UnitState {
    return this.units.get(unit.name)!;
  }

  /** Units whose weights a unit reads: the head of a tied model reads the embedding. */
  private reads(unit: UnitSpec): UnitState[] {
    const own = this.state(unit);
    const tied = unit.kind === "head" && !this.owner.has("head.w") ? this.owner.get("embed.word") : undefined;
    return tied === undefined || tied === own ? [own] : [own, tied];
  }

  acquire(unit: UnitSpec): UnitParams {
    const states = this.reads(unit);
    if (this.o.zero === 3) {
      for (const s of states) {
        const full = this.o.dp!.allGatherView(s.shard!, s.slots.size, "dp.zero3-gather");
        s.tensors = this.toTensors(s.slots, full);
      }
    }
    const find = (name: string) => {
      for (const s of states) {
        const t = s.tensors!.get(name);
        if (t !== undefined) return t;
      }
      return undefined;
    };
    return {
      get: (name) => find(name) ?? (() => { throw new Error(`internal: no parameter ${name} in ${unit.name}`); })(),
      maybe: find,
    };
  }

  release(unit: UnitSpec): void {
    if (this.o.zero !== 3) return;
    for (const s of this.reads(unit)) {
      for (const t of s.tensors!.values()) t.dispose();
      s.tensors = undefined;
    }
  }

  accept(unit: UnitSpec, grads: Grads): void {
    for (const [name, t] of grads) {
      const s = this.owner.get(name)!;
      const slot = s.slots.tensors.find((x) => x.spec.name === name)!;
      s.grad ??= new Float32Array(s.slots.size);
      const data = t.dataSync() as Float32Array;
      const g = s.grad;
      for (let i = 0; i < slot.size; i++) g[slot.offset + i]! += data[i]!;
      t.dispose();
    }
    const own = this.state(unit);
    if (this.o.zero >= 2 && own.grad !== undefined) {
      const block = this.o.dp === undefined ? own.grad : this.o.dp.reduceScatterView(own.grad, "dp.zero-grad");
      for (let i = 0; i < block.length; i++) own.ownedGrad![i]! += block[i]!;
      own.grad = undefined;
    }
  }

  /** The gradient of each unit's owned block after the data-parallel reduction (ZeRO 0/1 reduce here). */
  reduceGradients(): Float32Array[] {
    return [...this.units.values()].map((s) => {
      if (this.o.zero >= 2) return s.ownedGrad!;
      if (this.o.dp === undefined) return s.grad!;
      return this.o.zero === 0 ? this.o.dp.allReduce(s.grad!, "dp.grads") : this.o.dp.reduceScatter(s.grad!, "dp.grads");
    });
  }

  /** Adam on the owned blocks, then the weights every rank needs again (ZeRO 1/2 all-gather them). */
  update(grads: readonly Float32Array[]): void {
    this.step++;
    [...this.units.values()].forEach((s, i) => {
      adamStep(s.master, grads[i]!, s.adam, this.step, this.o.adam);
      if (this.o.zero === 3) s.shard!.set(s.master);
      else {
        const full = this.o.zero === 0 || this.o.dp === undefined ? s.master : this.o.dp.allGatherView(s.master, s.slots.size, "dp.zero-gather");
        this.setWeights(s, full);
      }
      if (s.grad !== undefined) s.grad.fill(0);
      s.ownedGrad?.fill(0);
    });
  }

  private setWeights(s: UnitState, full: Float32Array): void {
    for (const t of s.tensors!.values()) t.dispose();
    s.tensors = this.toTensors(s.slots, full);
  }

  /** Parameter servers: the full local gradient of every unit, and new weights from outside. */
  localGradients(): Float32Array[] {
    return [...this.units.values()].map((s) => s.grad!);
  }

  replaceWeights(flats: readonly Float32Array[]): void {
    [...this.units.values()].forEach((s, i) => {
      s.master.set(flats[i]!);
      this.setWeights(s, s.master);
      s.grad?.fill(0);
    });
  }

  /** Units in order with their layout and owned block, for the step's reductions and for reporting. */
  layout(): { slots: UnitSlots; owned: { first: number; end: number } }[] {
    return [...this.units.values()].map((s) => ({ slots: s.slots, owned: s.owned }));
  }

  /** This rank's final weights, unit by unit: the owned block (the whole unit without sharding). */
  ownedWeights(): Float32Array[] {
    return [...this.units.values()].map((s) => s.master.slice());
  }

  bytes(): StateBytes {
    let params = 0;
    let grads = 0;
    let owned = 0;
    for (const s of this.units.values()) {
      params += this.o.zero === 3 ? s.shard!.length : s.slots.size;
      grads += this.o.zero >= 2 ? s.ownedGrad!.length : s.slots.size;
      owned += s.master.length;
    }
    return { parametersBytes: 4 * params, gradientsBytes: 4 * grads, optimizerBytes: 12 * owned };
  }

  dispose(): void {
    for (const s of this.units.values()) for (const t of s.tensors?.values() ?? []) t.dispose();
  }
}
