import type { Tensor } from "@tensorflow/tfjs";
import type { Group } from "../comm/group.js";
import type { ParamProvider } from "../model/chunk.js";
import type { Grads, UnitParams } from "../model/context.js";
import { blockOf } from "../comm/fabric.js";
import { sliceForRank, unitSlots, type UnitSlots, type UnitSpec } from "../model/layout.js";
import { readNow, tensorFromShared, type Tf } from "../model/ops.js";
import type { HeapPath } from "../run/tensor-group.js";
import { adamState, adamStep, type AdamConfig, type AdamState } from "./adam.js";
import { gradientBucket } from "./bucket.js";

/**
 * The model states one rank holds, and ZeRO over the data-parallel group (Rajbhandari et al. 2020):
 * stage 0 keeps everything and all-reduces the gradients once per step; 1 shards the optimizer states
 * (reduce-scatter the gradients once, all-gather the weights after the update); 2 also the gradients
 * (reduce-scatter each unit's gradient right after its backward, every micro-batch); 3 also the weights
 * (all-gather each unit's weights before its forward and again before its backward). Each unit (the
 * embedding, a layer, the head) is one flat vector, sharded in blocks floor(j n / g) .. floor((j+1) n / g).
 *
 * With a data-parallel group, the gradients accumulate in the group's shared-memory bucket (bucket.ts),
 * where the reduction runs in place: no copy into a slot, none out of it, and Adam reads the result
 * where it is (PyTorch DDP's gradient_as_bucket_view). Each region is zeroed once its result is consumed
 * (the collective's closing sync has made sure no other member still reads it).
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
  /** The group that reduces (and under ZeRO shards) the unit: the data-parallel one, the experts' (StateOptions.experts), or none. */
  readonly group: Group | undefined;
  /** Its weight gathers run in the heap form (StateOptions.heap, every member of its group sharing its heap). */
  readonly heapGathers: boolean;
  /** This rank's block of the unit's flat vector (all of it without sharding). */
  readonly owned: { readonly first: number; readonly end: number };
  /**
   * ZeRO 0/1: the accumulated gradient; ZeRO 2/3: this micro-batch's, until reduce-scattered. With a
   * data-parallel group, a view of this rank's bucket at `bucketOffset`; else a private array.
   */
  grad: Float32Array | undefined;
  /** Floats into the data-parallel bucket where the unit's gradient lives; undefined without a group. */
  readonly bucketOffset: number | undefined;
  /** ZeRO 2/3: the accumulated gradient of the owned block. */
  readonly ownedGrad: Float32Array | undefined;
  /**
   * The master weights of the owned block and Adam's moments for them; undefined on a parameter-server
   * worker (StateOptions.optimizer false), whose weights are its tensors alone.
   */
  readonly optimizer: { readonly master: Float32Array; readonly adam: AdamState } | undefined;
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
  /**
   * Whether this rank updates its weights (default true). False on a parameter-server worker: the servers
   * hold the master weights and Adam's states (ps-server.ts) and send back new weights, which become this
   * rank's tensors (replaceWeights); it keeps no optimizer state, as the cost model counts none on it.
   */
  readonly optimizer?: boolean;
  /**
   * This rank's shared wasm heap (run/tensor-group.ts), when the ranks share theirs: the ZeRO master
   * (1/2) or shard (3) then lives in it, and the weight gathers copy every member's block straight into
   * the unit's new parameter tensors (Group.allGatherHeapInto) instead of through a slot and a flat copy.
   */
  readonly heap?: HeapPath;
  /**
   * Under expert parallelism, the group that reduces (and under ZeRO shards) the experts units: the ranks
   * that hold the same experts (the cost model's edp, dp x cp / ep ranks), undefined where that is this rank
   * alone (ep = dp x cp). Absent without expert parallelism: the experts units go with `dp` as every unit.
   */
  readonly experts?: { readonly group: Group | undefined };
}

/**
 * Adds a weight gradient tensor into a rank's accumulated gradient (floats [offset, offset + size) of
 * `into`) and frees the tensor: what every weight-gradient pass ends with (ModelState.accept), and what the
 * calibration's pass timings include (measure/passes.ts).
 */
export function accumulateGradient(tf: Tf, t: Tensor, into: Float32Array, offset: number): void {
  const data = readNow(tf, t); // summed below before any other TensorFlow.js call
  for (let i = 0; i < data.length; i++) into[offset + i]! += data[i]!;
  t.dispose();
}

export class ModelState implements ParamProvider {
  private readonly units = new Map<string, UnitState>();
  private readonly owner = new Map<string, UnitState>();
  private step = 0;
  /** Byte offsets of each unit's gathered block (master or shard) in this rank's heap, under heapGathers. */
  private readonly sourceBytes = new Map<UnitState, number>();

  constructor(private readonly o: StateOptions) {
    const several = (g: Group | undefined) => (g !== undefined && g.size > 1 ? g : undefined);
    const groupOf = (unit: UnitSpec) => (unit.kind === "experts" && o.experts !== undefined ? several(o.experts.group) : several(o.dp));
    // One bucket per group, over the units it reduces; every member of a group decides alike whether its
    // gathers read the heaps (useHeaps is true only if all of them share theirs).
    const groups = new Map<Group, { bucket: ReturnType<typeof gradientBucket>; units: UnitSpec[]; heap: boolean }>();
    for (const g of new Set(o.units.map(groupOf))) {
      if (g === undefined) continue;
      const units = o.units.filter((u) => groupOf(u) === g);
      groups.set(g, { bucket: gradientBucket(units, o.tp, o.zero), units, heap: o.heap !== undefined && o.zero >= 1 && o.heap.enable(g) });
    }
    const updates = o.optimizer !== false;
    o.units.forEach((unit) => {
      const group = groupOf(unit);
      const of = group === undefined ? undefined : groups.get(group)!;
      const heapGathers = of?.heap === true;
      const slots = unitSlots(unit, o.tp);
      const flat = new Float32Array(slots.size);
      for (const t of slots.tensors) flat.set(sliceForRank(o.initial(t.spec.name), t.spec, o.tp, o.tpRank), t.offset);
      const owned = o.zero >= 1 && group !== undefined ? blockOf(slots.size, group.size, group.index) : { first: 0, end: slots.size };
      const count = owned.end - owned.first;
      const bucketOffset = of?.bucket.offsets[of.units.indexOf(unit)];
      // The block the weight gathers read: the master (ZeRO 1/2) or the shard (3), in the heap under heapGathers.
      const source = heapGathers ? o.heap!.buffer(count) : undefined;
      source?.view.set(flat.subarray(owned.first, owned.end));
      const state: UnitState = {
        slots, group, heapGathers, owned, bucketOffset,
        grad: o.zero <= 1 ? this.gradBuffer(group, bucketOffset, slots.size) : undefined,
        ownedGrad: o.zero >= 2 ? new Float32Array(count) : undefined,
        optimizer: !updates ? undefined : {
          master: source !== undefined && o.zero < 3 ? source.view : flat.slice(owned.first, owned.end),
          adam: adamState(count),
        },
        shard: o.zero === 3 ? source?.view ?? flat.slice(owned.first, owned.end) : undefined,
        tensors: undefined,
      };
      if (source !== undefined) this.sourceBytes.set(state, source.byte);
      if (o.zero < 3) state.tensors = this.toTensors(slots, flat);
      this.units.set(unit.name, state);
      for (const t of slots.tensors) this.owner.set(t.spec.name, state);
    });
    // The regions start zeroed (no other member reads this bucket before this rank's first collective on it).
    for (const [g, { bucket }] of groups) g.bucket(0, bucket.floats).fill(0);
  }

  /** A zeroed gradient buffer: the unit's region of its group's bucket (zero whenever not in use), or a new array. */
  private gradBuffer(group: Group | undefined, bucketOffset: number | undefined, size: number): Float32Array {
    return bucketOffset === undefined ? new Float32Array(size) : group!.bucket(bucketOffset, size);
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

  /**
   * Under ZeRO 3, the embedding's gathered weights when the tied output layer of the same pass reads them
   * (the head of a tied model on the embedding's chunk): held from the first of the pass's two units to
   * use them to the second, as FSDP holds its root unit's (the embedding and the tied output layer), so the
   * pair gathers the word table once a pass, the gathers the cost model counts for the embedding's unit.
   * `uses` counts this pass's uses so far.
   */
  private heldRoot: { readonly state: UnitState; uses: number } | undefined;

  /** The embedding's state where this rank holds the embedding and a tied output layer reading it, under ZeRO 3. */
  private rootOf(unit: UnitSpec): UnitState | undefined {
    if (this.o.zero !== 3 || (unit.kind !== "embed" && unit.kind !== "head")) return undefined;
    const both = this.o.units.some((u) => u.kind === "embed") && this.o.units.some((u) => u.kind === "head");
    return both && !this.owner.has("head.w") ? this.owner.get("embed.word") : undefined;
  }

  acquire(unit: UnitSpec): UnitParams {
    const states = this.reads(unit);
    const root = this.rootOf(unit);
    if (root !== undefined) {
      this.heldRoot ??= { state: root, uses: 0 };
      this.heldRoot.uses++;
    }
    if (this.o.zero === 3) {
      for (const s of states) {
        // The held root, gathered by the pass's first unit to use it.
        if (s === root && s.tensors !== undefined) continue;
        if (s.group === undefined) s.tensors = this.toTensors(s.slots, s.shard!);
        else if (s.heapGathers) s.tensors = this.gatherTensors(s, "dp.zero3-gather");
        else s.tensors = this.toTensors(s.slots, s.group.allGatherView(s.shard!, s.slots.size, "dp.zero3-gather"));
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
    const root = this.rootOf(unit);
    for (const s of this.reads(unit)) {
      // The held root stays gathered until the pass's second use of it is done.
      if (s === root && this.heldRoot!.uses < 2) continue;
      for (const t of s.tensors!.values()) t.dispose();
      s.tensors = undefined;
    }
    if (root !== undefined && this.heldRoot!.uses >= 2) this.heldRoot = undefined;
  }

  accept(unit: UnitSpec, grads: Grads): void {
    for (const [name, t] of grads) {
      const s = this.owner.get(name)!;
      const slot = s.slots.tensors.find((x) => x.spec.name === name)!;
      s.grad ??= this.gradBuffer(s.group, s.bucketOffset, s.slots.size);
      accumulateGradient(this.o.tf, t, s.grad, slot.offset);
    }
    const own = this.state(unit);
    if (this.o.zero >= 2 && own.grad !== undefined) {
      const dp = own.group;
      const inBucket = own.bucketOffset !== undefined;
      const block = inBucket ? dp!.reduceScatterBucket(own.bucketOffset, own.slots.size, "dp.zero-grad")
        : dp === undefined ? own.grad : dp.reduceScatterView(own.grad, "dp.zero-grad");
      for (let i = 0; i < block.length; i++) own.ownedGrad![i]! += block[i]!;
      // The region is shared with the next unit's backward: zero it now that the block is summed (the
      // reduce-scatter's closing sync has made sure no member still reads this rank's bucket).
      if (inBucket) own.grad.fill(0);
      own.grad = undefined;
    }
  }

  /**
   * A tied word embedding held twice (layout.ts headKeepsTiedCopy): sums this rank's copy's accumulated
   * gradient with the other copy's holder's, in place, so that both copies take the same update; the
   * data-parallel reduction then sums the replicas as for any gradient. ZeRO 0/1 only, whose gradients stay
   * whole until the step (validate.ts refuses ZeRO 2/3 with it).
   */
  sumTiedCopies(pair: Group): void {
    const s = this.owner.get("embed.word");
    const slot = s?.slots.tensors.find((t) => t.spec.name === "embed.word");
    if (s === undefined || slot === undefined || s.grad === undefined) throw new Error("internal: no whole embed.word gradient on a rank of the tied pair");
    pair.allReduce(s.grad.subarray(slot.offset, slot.offset + slot.size), "pp.tied-grad");
  }

  /**
   * The gradient of each unit's owned block after the data-parallel reduction (ZeRO 0/1 reduce here, in
   * place in the bucket: every unit has its own region, so each result stays valid, a view of the bucket,
   * until update() has consumed it and zeroes it).
   */
  reduceGradients(): Float32Array[] {
    return [...this.units.values()].map((s) => {
      if (this.o.zero >= 2) return s.ownedGrad!;
      if (s.bucketOffset === undefined) return s.grad!;
      const dp = s.group!;
      return this.o.zero === 0 ? dp.allReduceBucket(s.bucketOffset, s.slots.size, "dp.grads") : dp.reduceScatterBucket(s.bucketOffset, s.slots.size, "dp.grads");
    });
  }

  /**
   * Adam on the owned blocks, then the weights every rank needs again (ZeRO 1/2 all-gather them); then
   * each unit's gradient is zeroed for the next step (under ZeRO 0/1, its region of the bucket, which
   * `grads` views: Adam has read it by then, and the reduction's closing sync has made sure no other
   * member still reads it).
   */
  update(grads: readonly Float32Array[]): void {
    this.step++;
    [...this.units.values()].forEach((s, i) => {
      if (s.optimizer === undefined) throw new Error("internal: update() on a rank without optimizer state (a parameter-server worker)");
      const { master, adam } = s.optimizer;
      adamStep(master, grads[i]!, adam, this.step, this.o.adam);
      if (this.o.zero === 3) s.shard!.set(master);
      else if (s.heapGathers) {
        for (const t of s.tensors!.values()) t.dispose();
        s.tensors = this.gatherTensors(s, "dp.zero-gather");
      } else {
        const full = this.o.zero === 0 || s.group === undefined ? master : s.group.allGatherView(master, s.slots.size, "dp.zero-gather");
        this.setWeights(s, full);
      }
      if (s.grad !== undefined) s.grad.fill(0);
      s.ownedGrad?.fill(0);
    });
  }

  /** The unit's parameter tensors, every member's block copied straight into them from its heap. */
  private gatherTensors(s: UnitState, purpose: string): Map<string, Tensor> {
    const tensors = gatherIntoTensors(this.o.heap!, s.group!, this.sourceBytes.get(s)!, s.slots.size, s.slots.tensors, purpose);
    return new Map(s.slots.tensors.map((t, i) => [t.spec.name, tensors[i]!]));
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
      s.optimizer?.master.set(flats[i]!);
      this.setWeights(s, flats[i]!);
      s.grad?.fill(0);
    });
  }

  /** Units in order with their layout and owned block, for the step's reductions and for reporting. */
  layout(): { slots: UnitSlots; owned: { first: number; end: number } }[] {
    return [...this.units.values()].map((s) => ({ slots: s.slots, owned: s.owned }));
  }

  /**
   * This rank's final weights, unit by unit: the owned block (the whole unit without sharding); read from
   * the tensors where there is no master copy (a parameter-server worker).
   */
  ownedWeights(): Float32Array[] {
    return [...this.units.values()].map((s) => {
      if (s.optimizer !== undefined) return s.optimizer.master.slice();
      const flat = new Float32Array(s.slots.size);
      for (const t of s.slots.tensors) flat.set(s.tensors!.get(t.spec.name)!.dataSync() as Float32Array, t.offset);
      return flat;
    });
  }

  bytes(): StateBytes {
    let params = 0;
    let grads = 0;
    let owned = 0;
    for (const s of this.units.values()) {
      params += this.o.zero === 3 ? s.shard!.length : s.slots.size;
      grads += this.o.zero >= 2 ? s.ownedGrad!.length : s.slots.size;
      owned += s.optimizer?.master.length ?? 0;
    }
    return { parametersBytes: 4 * params, gradientsBytes: 4 * grads, optimizerBytes: 12 * owned };
  }

  dispose(): void {
    for (const s of this.units.values()) for (const t of s.tensors?.values() ?? []) t.dispose();
  }
}

/**
 * A ZeRO weight gather on shared heaps (ModelState's, and the probe's that times it): this member's block
 * of a unit's flat vector of `total` floats lies at `sourceByte` of its heap; every member's block is
 * copied straight into new tensors of the unit's parameters (their offsets in the vector, sizes and
 * shapes; Group.allGatherHeapInto).
 */
export function gatherIntoTensors(
  heap: HeapPath, group: Group, sourceByte: number, total: number,
  parts: readonly { readonly offset: number; readonly size: number; readonly shape: readonly number[] }[], purpose: string,
): Tensor[] {
  return heap.filled(parts.map((p) => p.shape), (bytes) =>
    group.allGatherHeapInto(sourceByte, total, parts.map((p, i) => ({ first: p.offset, count: p.size, byte: bytes[i]! })), purpose));
}
