import { blockOf, type CommKind, type GroupLayout } from "./fabric.js";
import type { Kernels } from "./kernels.js";
import { bump, type Operation, type Status, type Waiter } from "./sync.js";
import type { Traffic } from "./traffic.js";

/**
 * Collectives of one group over shared memory. Every member has a slot in each of two buffers; call c
 * uses buffer c mod 2, so a member may start call c+1 while a slower one still reads call c's buffer,
 * and one barrier per phase suffices. An all-reduce is a reduce-scatter (member j sums block j of every
 * slot, in member order, into its own slot) and an all-gather (every member copies the others' blocks):
 * the direct form of the ring's two halves, moving the same bytes per rank (Patarasuk & Yuan 2009;
 * NCCL's convention). Each block is summed once, by its owner, so all members get bitwise equal results.
 */
export class Group {
  readonly size: number;
  readonly index: number;
  readonly kind: CommKind;
  readonly name: string;
  private readonly floats: Float32Array;
  private readonly epochs: Int32Array;
  private readonly bumpWord: number;
  private epoch = 0;
  private calls = 0;

  constructor(
    memory: WebAssembly.Memory,
    private readonly layout: GroupLayout,
    rank: number,
    private readonly slot: number,
    private readonly waiter: Waiter,
    private readonly status: Status,
    private readonly kernels: Kernels,
    private readonly traffic: Traffic,
  ) {
    const members = layout.spec.members;
    this.size = members.length;
    this.index = members.indexOf(rank);
    if (this.index < 0) throw new Error(`internal: rank ${rank} is not in group ${layout.spec.name}`);
    this.kind = layout.spec.kind;
    this.name = layout.spec.name;
    this.floats = new Float32Array(memory.buffer);
    this.epochs = new Int32Array(memory.buffer);
    this.bumpWord = layout.controlByte / 4;
  }

  private slotFloat(buf: number, member: number): number {
    return (this.layout.dataByte + (buf * this.size + member) * this.layout.slotBytes) / 4;
  }

  private describe(operation: Operation): string {
    return `${operation} (${this.name}, call ${this.calls})`;
  }

  /** Every member arrives before any leaves; names the missing members when it times out. */
  private sync(operation: Operation): void {
    const e = ++this.epoch;
    const words = this.epochs;
    const first = this.bumpWord + 1;
    Atomics.store(words, first + this.index, e);
    bump(words, this.bumpWord);
    const members = this.layout.spec.members;
    this.waiter.until(
      this.bumpWord,
      () => {
        for (let k = 0; k < this.size; k++) if (Atomics.load(words, first + k) < e) return false;
        return true;
      },
      () => this.describe(operation),
      () => `waiting for rank ${members.filter((_, k) => Atomics.load(words, first + k) < e).join(", ")}`,
    );
  }

  private begin(operation: Operation, n: number): { buf: number; mine: number; t0: number } {
    if (n > this.layout.spec.capacityFloats) {
      throw new Error(`internal: ${this.describe(operation)} of ${n} floats exceeds the group's ${this.layout.spec.capacityFloats}`);
    }
    this.status.set(operation, this.slot);
    this.waiter.takeIdleMs();
    const buf = this.calls++ & 1;
    return { buf, mine: this.slotFloat(buf, this.index), t0: performance.now() };
  }

  private end(purpose: string, elements: number, t0: number): void {
    const idle = this.waiter.takeIdleMs();
    this.traffic.record(this.kind, purpose, 4 * elements, (performance.now() - t0) / 1e3, idle / 1e3);
  }

  barrier(): void {
    if (this.size === 1) return;
    this.status.set("barrier", this.slot);
    this.sync("barrier");
  }

  /** Member j's block of a buffer of n floats. */
  block(n: number, member = this.index): { first: number; end: number } {
    return blockOf(n, this.size, member);
  }

  /** Sums `x` over the members in place (or takes the maximum) and returns it. */
  allReduce(x: Float32Array, purpose: string, op: "sum" | "max" = "sum"): Float32Array {
    if (this.size === 1) return x;
    x.set(this.allReduceView(x, purpose, op));
    return x;
  }

  /** Sums `x` over the members and returns this member's block (a new array). */
  reduceScatter(x: Float32Array, purpose: string): Float32Array {
    if (this.size === 1) return x.slice();
    const view = this.reduceScatterView(x, purpose);
    const out = new Float32Array(view.length);
    out.set(view);
    return out;
  }

  /** Concatenates every member's block (member j passes block j of a buffer of `total` floats); a new array. */
  allGather(x: Float32Array, total: number, purpose: string): Float32Array {
    if (this.size === 1) return x.slice();
    const view = this.allGatherView(x, total, purpose);
    const out = new Float32Array(total);
    out.set(view);
    return out;
  }

  /** Block k of `x` goes to member k; block k of the result came from member k. Needs size | x.length. */
  allToAll(x: Float32Array, purpose: string): Float32Array {
    if (this.size === 1) return x.slice();
    const b = x.length / this.size;
    if (!Number.isInteger(b)) throw new Error(`internal: ${this.describe("all-to-all")} of ${x.length} floats over ${this.size} members`);
    const { buf, mine, t0 } = this.begin("all-to-all", x.length);
    this.floats.set(x, mine);
    this.sync("all-to-all");
    const out = new Float32Array(x.length);
    for (let k = 0; k < this.size; k++) {
      const at = this.slotFloat(buf, k) + this.index * b;
      out.set(this.floats.subarray(at, at + b), k * b);
    }
    this.end(purpose, x.length - b, t0);
    return out;
  }

  /**
   * Zero-copy forms: the caller fills this member's slot for the next call in place (nextSlot), and the
   * result is read in place from the same slot, valid until the call after next on this group. The data
   * then crosses memory once per block, as on a real interconnect: an all-reduce reads every slot's block
   * once and copies the other blocks once; an all-gather copies the other blocks once.
   */
  nextSlot(n: number): Float32Array {
    if (n > this.layout.spec.capacityFloats) {
      throw new Error(`internal: a slot of ${n} floats on ${this.name} exceeds the group's ${this.layout.spec.capacityFloats}`);
    }
    const at = this.slotFloat(this.calls & 1, this.index);
    return this.floats.subarray(at, at + n);
  }

  /** All-reduce of the first n floats of this member's slot (filled through nextSlot); returns the slot. */
  allReduceSlot(n: number, purpose: string, op: "sum" | "max" = "sum"): Float32Array {
    if (this.size === 1) return this.nextSlot(n);
    const { buf, mine, t0 } = this.begin("all-reduce", n);
    this.sync("all-reduce");
    const own = this.reduceOwnBlock(buf, mine, n, op);
    this.sync("all-reduce");
    this.copyOtherBlocks(buf, mine, n);
    this.end(purpose, n + (this.size - 2) * own, t0);
    return this.floats.subarray(mine, mine + n);
  }

  /** All-gather where this member wrote its block at its own offset of its slot (nextSlot(total)); returns the slot. */
  allGatherSlot(total: number, purpose: string): Float32Array {
    if (this.size === 1) return this.nextSlot(total);
    const { buf, mine, t0 } = this.begin("all-gather", total);
    this.sync("all-gather");
    this.copyOtherBlocks(buf, mine, total);
    const { first, end } = this.block(total);
    this.end(purpose, (this.size - 1) * (end - first), t0);
    return this.floats.subarray(mine, mine + total);
  }

  /**
   * The training path's forms: the caller's data is copied into this member's slot once (the only copy a
   * collective adds), the collective runs in place, and the result is returned as a view of the slot,
   * valid until the call after next on this group: the caller consumes it at once (a new tensor, a sum
   * into an accumulator). Bytes and numerics are those of the copying forms.
   */
  allReduceView(x: Float32Array, purpose: string, op: "sum" | "max" = "sum"): Float32Array {
    if (this.size === 1) return x;
    this.nextSlot(x.length).set(x);
    return this.allReduceSlot(x.length, purpose, op);
  }

  /** Sums `x` over the members; returns this member's block as a view of its slot. */
  reduceScatterView(x: Float32Array, purpose: string): Float32Array {
    if (this.size === 1) return x;
    this.nextSlot(x.length).set(x);
    const { buf, mine, t0 } = this.begin("reduce-scatter", x.length);
    this.sync("reduce-scatter");
    const own = this.reduceOwnBlock(buf, mine, x.length, "sum");
    const { first } = this.block(x.length);
    this.end(purpose, x.length - own, t0);
    return this.floats.subarray(mine + first, mine + first + own);
  }

  /** Every member's block of a buffer of `total` floats (member j passes block j); returns a view of the slot. */
  allGatherView(x: Float32Array, total: number, purpose: string): Float32Array {
    if (this.size === 1) return x;
    const { first, end } = this.block(total);
    if (x.length !== end - first) throw new Error(`internal: ${this.describe("all-gather")} got ${x.length} floats for a block of ${end - first}`);
    this.nextSlot(total).set(x, first);
    return this.allGatherSlot(total, purpose);
  }

  private copyOtherBlocks(buf: number, mine: number, n: number): void {
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      const { first, end } = this.block(n, k);
      const at = this.slotFloat(buf, k);
      this.floats.copyWithin(mine + first, at + first, at + end);
    }
  }

  /** Sums (or maxes) block `index` of every member's slot into this member's slot; returns the block length. */
  private reduceOwnBlock(buf: number, mine: number, n: number, op: "sum" | "max"): number {
    const { first, end } = this.block(n);
    const count = end - first;
    const kernel = op === "sum" ? this.kernels.add : this.kernels.max;
    const out = 4 * (mine + first);
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      kernel(out, 4 * (this.slotFloat(buf, k) + first), out, count);
    }
    return count;
  }
}
