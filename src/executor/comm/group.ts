import { blockOf, HEAP_WORDS, type CommKind, type GroupLayout } from "./fabric.js";
import type { Kernels } from "./kernels.js";
import { bump, type Operation, type Status, type Waiter } from "./sync.js";
import type { Traffic } from "./traffic.js";

/**
 * Collectives of one group over shared memory. Every member has a slot in each of two buffers; slot call
 * c uses buffer c mod 2, so a member may start call c+1 while a slower one still reads call c's buffer,
 * and one barrier per phase suffices (calls on the group's bucket in between, below, only add barriers).
 * An all-reduce is a reduce-scatter (member j sums block j of every slot, in member order, into its own
 * slot) and an all-gather (every member copies the others' blocks):
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
  /** Every collective so far (named in errors). */
  private calls = 0;
  /** Collectives over the slots so far: call c uses buffer c mod 2 (the bucket forms use no slot). */
  private slotCalls = 0;
  /** Heap collectives so far that pushed their blocks (Group.pushes; the probe reports it). */
  pushedCalls = 0;
  /** Set by useHeaps when every member's heap is shared: the heap forms below may run. */
  private heaps: { readonly own: WebAssembly.Memory; readonly members: readonly WebAssembly.Memory[]; readonly scratch: HeapScratch } | undefined;
  /**
   * Tests only: milliseconds this member sleeps in a bucket collective just before it reads the other
   * members' buckets for the last time, which widens the window a missing closing sync would leave open.
   */
  readDelayMs = 0;

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
    this.calls++;
    const buf = this.slotCalls++ & 1;
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

  /**
   * Block k of `x` goes to member k; block k of the result came from member k. Needs size | x.length. The
   * result is a view of this member's slot in the other buffer, valid until its next collective on this
   * group: once every member has passed this call's sync, all have done reading that buffer (the previous
   * call's), and the next call is the first to write it again. A new array per call cost more than the copy:
   * a fresh 64 MiB array took 0.2-0.3 s to fill on the 2-core VM (its pages faulted in on first write), 50x
   * the copy into memory already in use (2026-11-25).
   */
  allToAll(x: Float32Array, purpose: string): Float32Array {
    if (this.size === 1) return x.slice();
    const b = x.length / this.size;
    if (!Number.isInteger(b)) throw new Error(`internal: ${this.describe("all-to-all")} of ${x.length} floats over ${this.size} members`);
    const { buf, mine, t0 } = this.begin("all-to-all", x.length);
    this.floats.set(x, mine);
    this.sync("all-to-all");
    const out = this.slotFloat(buf ^ 1, this.index);
    for (let k = 0; k < this.size; k++) this.kernels.copy(4 * (this.slotFloat(buf, k) + this.index * b), 4 * (out + k * b), b);
    this.end(purpose, x.length - b, t0);
    return this.floats.subarray(out, out + x.length);
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
    const at = this.slotFloat(this.slotCalls & 1, this.index);
    return this.floats.subarray(at, at + n);
  }

  /** All-reduce of the first n floats of this member's slot (filled through nextSlot); returns the slot. */
  allReduceSlot(n: number, purpose: string, op: "sum" | "max" = "sum"): Float32Array {
    if (this.size === 1) return this.nextSlot(n);
    const { buf, mine, t0 } = this.begin("all-reduce", n);
    this.sync("all-reduce");
    const own = this.reduceOwnBlock(this.slotBase(buf), n, op);
    this.sync("all-reduce");
    this.copyOtherBlocks(this.slotBase(buf), n);
    this.end(purpose, n + (this.size - 2) * own, t0);
    return this.floats.subarray(mine, mine + n);
  }

  /** All-gather where this member wrote its block at its own offset of its slot (nextSlot(total)); returns the slot. */
  allGatherSlot(total: number, purpose: string): Float32Array {
    if (this.size === 1) return this.nextSlot(total);
    const { buf, mine, t0 } = this.begin("all-gather", total);
    this.sync("all-gather");
    this.copyOtherBlocks(this.slotBase(buf), total);
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
    const own = this.reduceOwnBlock(this.slotBase(buf), x.length, "sum");
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

  /**
   * The gradient bucket: one persistent region per member (GroupSpec.bucketFloats), which the caller
   * accumulates into and which the collectives below reduce in place, so no copy goes in and none comes
   * out (PyTorch DDP's gradient_as_bucket_view). Per member of two, a reduce-scatter of n floats then
   * moves 1.5 n through memory (its block of both buckets read, its block written) instead of 3.5 n with
   * the copy in (x read, the slot written), an all-reduce 2.5 n instead of 4.5 n (6.5 n copying out too).
   * Bytes and numerics are those of the slot forms: block j is summed once, by member j, in the same
   * order, so every member's result is bitwise equal.
   *
   * The region is not double-buffered: the caller writes it again (the next micro-batch's or step's
   * accumulation, or zeroing it once the result is consumed) as soon as a collective returns, while
   * another member may still be reading it. So each collective ends with a closing sync, after the last
   * read of another member's bucket: once it returns, nobody reads this member's bucket any more.
   */
  bucket(offsetFloats: number, n: number): Float32Array {
    const at = this.bucketFloat(this.index, offsetFloats, n);
    return this.floats.subarray(at, at + n);
  }

  /**
   * Sums floats [offset, offset + n) of every member's bucket in place; returns this member's (the sum),
   * a view valid until the caller writes the bucket again.
   */
  allReduceBucket(offsetFloats: number, n: number, purpose: string): Float32Array {
    if (this.size === 1) return this.bucket(offsetFloats, n);
    const base = this.bucketBase(offsetFloats, n);
    const t0 = this.beginBucket("all-reduce");
    this.sync("all-reduce"); // every member's bucket holds its data
    const own = this.reduceOwnBlock(base, n, "sum");
    this.sync("all-reduce"); // every block is summed
    this.stall();
    this.copyOtherBlocks(base, n);
    this.sync("all-reduce"); // closing: every member has copied its blocks out of the others' buckets
    this.end(purpose, n + (this.size - 2) * own, t0);
    return this.bucket(offsetFloats, n);
  }

  /**
   * Sums floats [offset, offset + n) of every member's bucket; returns this member's block of the sum, a
   * view of its own bucket (the rest of it is left as it was), valid until the caller writes the bucket again.
   */
  reduceScatterBucket(offsetFloats: number, n: number, purpose: string): Float32Array {
    if (this.size === 1) return this.bucket(offsetFloats, n);
    const base = this.bucketBase(offsetFloats, n);
    const t0 = this.beginBucket("reduce-scatter");
    this.sync("reduce-scatter"); // every member's bucket holds its data
    this.stall();
    const own = this.reduceOwnBlock(base, n, "sum");
    this.sync("reduce-scatter"); // closing: every owner has read its block out of the others' buckets
    this.end(purpose, n - own, t0);
    const { first } = this.block(n);
    const at = base(this.index) + first;
    return this.floats.subarray(at, at + own);
  }

  /**
   * Enables the heap forms when every member has a shared wasm heap (`heaps` by global rank, null where a
   * rank has none; run/shared-heap.ts); returns whether they are enabled. Every member passes the same
   * heaps, so all members decide alike.
   */
  useHeaps(own: WebAssembly.Memory, heaps: readonly (WebAssembly.Memory | null)[], scratch: HeapScratch): boolean {
    const members = this.layout.spec.members.map((r) => heaps[r] ?? null);
    if (members.some((m) => m === null) || !(own.buffer instanceof SharedArrayBuffer)) return false;
    this.heaps = { own, members: members as WebAssembly.Memory[], scratch };
    return true;
  }

  get heapForms(): boolean {
    return this.heaps !== undefined;
  }

  /**
   * The heap forms: the input is a tensor's data where TensorFlow.js put it in this member's heap (byte
   * offset xByte), the output a buffer the caller allocated there for the result (yByte), and members
   * read each other's inputs and outputs straight from their heaps: nothing is copied into the fabric
   * and nothing out of it. A member sums its own block chunk by chunk: each other member's part is copied
   * into a scratch buffer of its own heap, small enough to stay in cache, and the SIMD kernel adds it
   * (a kernel addresses one memory: WebAssembly multi-memory is not in Node 20's V8). Summed in the
   * order of the slot forms, so the results are bitwise equal to theirs; bytes counted as theirs. Each
   * ends with a closing sync: once it returns, no member reads this member's input or output any more.
   *
   * All-reduce of n floats: the sum (or maximum) lands in the output, n floats.
   */
  allReduceHeap(xByte: number, yByte: number, n: number, purpose: string, op: "sum" | "max" = "sum"): void {
    const push = this.pushes("all-reduce", n);
    const t0 = this.beginHeap("all-reduce", xByte, yByte, n, push);
    this.sync("all-reduce"); // every member's input and output are in place and published
    this.checkCounts("all-reduce", n, push);
    const { first } = this.block(n);
    const own = this.reduceOwnBlockFromHeaps(xByte, yByte + 4 * first, n, op, push);
    if (!push) {
      this.sync("all-reduce"); // every block is summed
      this.copyBlocksFromHeaps(yByte, n, (k) => this.published(k, 1) + 4 * this.block(n, k).first);
    }
    this.sync("all-reduce"); // closing: every block is in every output
    this.end(purpose, n + (this.size - 2) * own, t0);
  }

  /** Reduce-scatter of n floats: this member's block of the sum lands in the output (block(n) floats). */
  reduceScatterHeap(xByte: number, yByte: number, n: number, purpose: string): void {
    const t0 = this.beginHeap("reduce-scatter", xByte, yByte, n, false);
    this.sync("reduce-scatter");
    this.checkCounts("reduce-scatter", n, false);
    const own = this.reduceOwnBlockFromHeaps(xByte, yByte, n, "sum");
    this.sync("reduce-scatter"); // closing
    this.end(purpose, n - own, t0);
  }

  /** All-gather: the input is this member's block (blockFloats) of `total` floats; the output gets all of them. */
  allGatherHeap(xByte: number, yByte: number, blockFloats: number, total: number, purpose: string): void {
    const { first, end } = this.block(total);
    if (blockFloats !== end - first) throw new Error(`internal: ${this.describe("all-gather")} got ${blockFloats} floats for a block of ${end - first}`);
    this.allGatherHeapInto(xByte, total, [{ first: 0, count: total, byte: yByte }], purpose);
  }

  /**
   * All-gather into several outputs: the input is this member's block of a flat vector of `total` floats
   * (at srcByte of its heap: the ZeRO master or shard), and each segment [first, first + count) of the
   * vector goes to the buffer at `byte` of this member's heap (a unit's parameter tensors): no flat copy
   * in between. Same bytes as the other all-gathers.
   *
   * Blocks too large for the caches (pushes) are pushed: each member writes its own block, chunk by
   * chunk, into its own segments and then, the chunk still in cache, into every other member's, so it
   * reads its block from memory once; the members publish their segments as a table in their staging
   * buffers, which an all-gather does not otherwise use. Smaller blocks are pulled: each member copies
   * its own block while the others arrive, then reads theirs, which the caches still hold.
   */
  allGatherHeapInto(srcByte: number, total: number, segments: readonly HeapSegment[], purpose: string): void {
    const { own, scratch } = this.sharedHeaps("all-gather");
    const mine = new Float32Array(own.buffer);
    const { first, end } = this.block(total);
    // A table of more segments than the staging buffer holds (a unit of over 10k tensors) is pulled.
    const push = this.pushes("all-gather", total) && 1 + 3 * segments.length <= scratch.floats;
    let t0: number;
    if (push) {
      // Unsigned: a heap of up to 4 GiB has byte offsets of 2^31 and more.
      const table = new Uint32Array(own.buffer, scratch.byte, 1 + 3 * segments.length);
      table[0] = segments.length;
      segments.forEach((s, i) => table.set([s.first, s.count, s.byte], 1 + 3 * i));
      t0 = this.beginHeap("all-gather", srcByte, scratch.byte, total, true);
    } else {
      t0 = this.beginHeap("all-gather", srcByte, 0, total, false);
      this.copyBlockInto(mine, segments, srcByte / 4, { first, end }, mine, first);
    }
    this.sync("all-gather"); // every member's block (and, pushing, its segments) in place and published
    this.checkCounts("all-gather", total, push);
    if (push) {
      const others: { readonly floats: Float32Array; readonly segments: readonly HeapSegment[] }[] = [];
      for (let k = 0; k < this.size; k++) if (k !== this.index) others.push(this.peerSegments(k));
      for (let lo = first; lo < end; lo += scratch.floats) {
        const chunk = { first: lo, end: Math.min(end, lo + scratch.floats) };
        const from = srcByte / 4 + lo - first;
        this.copyBlockInto(mine, segments, from, chunk, mine, lo);
        for (const o of others) this.copyBlockInto(mine, o.segments, from, chunk, o.floats, lo);
      }
    } else {
      for (let k = 0; k < this.size; k++) {
        if (k === this.index) continue;
        const block = this.block(total, k);
        const at = this.published(k, 0) / 4;
        this.copyBlockInto(this.heapFloats(k, at, block.end - block.first), segments, at, block, mine, block.first);
      }
    }
    this.sync("all-gather"); // closing: every block is in every member's segments
    this.end(purpose, (this.size - 1) * (end - first), t0);
  }

  /**
   * All-to-all between heaps: the input (n floats at xByte of this member's heap, n / size for each member
   * in member order) and the output (n floats at yByte, a block from each member in member order) both lie
   * in the members' shared heaps, so each member copies its own block from its input into its output, and
   * after the sync the block each other member holds for it straight from that member's input: the data
   * crosses memory once, with no slot between (the slot form, allToAll, copies it in and out). A closing
   * sync: once it returns, no member reads this one's input any more. Same bytes as allToAll.
   */
  allToAllHeap(xByte: number, yByte: number, n: number, purpose: string): void {
    const b = n / this.size;
    if (!Number.isInteger(b)) throw new Error(`internal: ${this.describe("all-to-all")} of ${n} floats over ${this.size} members`);
    const { scratch } = this.sharedHeaps("all-to-all");
    const t0 = this.beginHeap("all-to-all", xByte, yByte, n, false);
    scratch.kernels.copy(xByte + 4 * this.index * b, yByte + 4 * this.index * b, b);
    this.sync("all-to-all"); // every member's input published
    this.checkCounts("all-to-all", n, false);
    const mine = this.heapFloats(this.index, yByte / 4, n);
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      const at = this.published(k, 0) / 4 + this.index * b;
      mine.set(this.heapFloats(k, at, b).subarray(at, at + b), yByte / 4 + k * b);
    }
    this.sync("all-to-all"); // closing: every member has read its blocks
    this.end(purpose, n - b, t0);
  }

  /**
   * Copies floats [range.first, range.end) of the gathered vector, which lie at float `at` of `from`
   * (`at` holding element `origin`), into the parts of the segments they cover, the segments lying in
   * `to`. Within one heap a memmove (set on views of one buffer may copy the source aside first), which
   * must be this member's own (the only heap its kernels address).
   */
  private copyBlockInto(from: Float32Array, segments: readonly HeapSegment[], at: number, range: { readonly first: number; readonly end: number }, to: Float32Array, origin: number): void {
    for (const s of segments) {
      const lo = Math.max(range.first, s.first);
      const hi = Math.min(range.end, s.first + s.count);
      if (lo >= hi) continue;
      const src = at + lo - origin;
      const dst = s.byte / 4 + lo - s.first;
      // within this member's own heap: memory.copy, a memmove (kernels.ts), not copyWithin's relaxed copy
      if (from.buffer === to.buffer) this.heaps!.scratch.kernels.copy(4 * src, 4 * dst, hi - lo);
      else to.set(from.subarray(src, src + hi - lo), dst);
    }
  }

  /**
   * Whether a collective of n floats pushes its blocks. Members with the same threshold decide alike (n
   * and the group are the same); each publishes its choice and checkCounts compares them, since the two
   * forms sync a different number of times.
   */
  private pushes(operation: Operation, n: number): boolean {
    return Math.floor(n / this.size) >= this.sharedHeaps(operation).scratch.pushMinFloats;
  }

  /** Member k's segments, from the table it published, and its heap, checked to hold every one of them. */
  private peerSegments(member: number): { readonly floats: Float32Array; readonly segments: readonly HeapSegment[] } {
    const at = this.published(member, 1) / 4;
    const count = new Uint32Array(this.heapFloats(member, at, 1).buffer)[at]!;
    const words = new Uint32Array(this.heapFloats(member, at, 1 + 3 * count).buffer, 4 * (at + 1), 3 * count);
    const segments = Array.from({ length: count }, (_, i) => ({ first: words[3 * i]!, count: words[3 * i + 1]!, byte: words[3 * i + 2]! }));
    const last = Math.max(0, ...segments.map((s) => s.byte / 4 + s.count));
    return { floats: this.heapFloats(member, 0, last), segments };
  }

  /** The heaps, when the heap forms are enabled (useHeaps); calling a heap form otherwise is a misuse. */
  private sharedHeaps(operation: Operation): NonNullable<Group["heaps"]> {
    if (this.heaps === undefined) throw new Error(`internal: ${this.describe(operation)} in a heap form, but the heaps of ${this.name} are not shared`);
    return this.heaps;
  }

  private beginHeap(operation: Operation, xByte: number, yByte: number, n: number, push: boolean): number {
    this.sharedHeaps(operation);
    this.status.set(operation, this.slot);
    this.waiter.takeIdleMs();
    this.calls++;
    if (push) this.pushedCalls++;
    const at = this.heapWord(this.index);
    Atomics.store(this.epochs, at, xByte | 0);
    Atomics.store(this.epochs, at + 1, yByte | 0);
    Atomics.store(this.epochs, at + 2, n);
    Atomics.store(this.epochs, at + 3, push ? 1 : 0);
    return performance.now();
  }

  /**
   * After the first sync: every member passed the same element count and chose the same form, pushed or
   * pulled (a misuse otherwise: the forms sync a different number of times).
   */
  private checkCounts(operation: Operation, n: number, push: boolean): void {
    const counts = Array.from({ length: this.size }, (_, k) => Atomics.load(this.epochs, this.heapWord(k) + 2));
    if (counts.some((c) => c !== n)) throw new Error(`internal: ${this.describe(operation)}: the members passed ${counts.join(", ")} elements`);
    const forms = Array.from({ length: this.size }, (_, k) => (Atomics.load(this.epochs, this.heapWord(k) + 3) === 1 ? "pushed" : "pulled"));
    if (forms.some((f) => f !== (push ? "pushed" : "pulled"))) throw new Error(`internal: ${this.describe(operation)}: the members chose the forms ${forms.join(", ")}`);
  }

  private heapWord(member: number): number {
    return this.bumpWord + 1 + this.size + HEAP_WORDS * member;
  }

  /** The byte offset member k published for this call: 0 its input, 1 its output. */
  private published(member: number, which: 0 | 1): number {
    return Atomics.load(this.epochs, this.heapWord(member) + which) >>> 0;
  }

  /**
   * Member k's heap as floats, checked to hold [firstFloat, firstFloat + count). Just after another thread
   * has grown a shared memory, this thread's `buffer` can still have the old length until V8 handles the
   * pending interrupt that announces the growth, so a short view is read again for a while before it
   * counts as an error.
   */
  private heapFloats(member: number, firstFloat: number, count: number): Float32Array {
    const memory = this.heaps!.members[member]!;
    const deadline = performance.now() + HEAP_GROWTH_GRACE_MS;
    for (;;) {
      const floats = new Float32Array(memory.buffer);
      if (firstFloat + count <= floats.length) return floats;
      if (performance.now() > deadline) {
        throw new Error(`internal: ${this.name} member ${member}'s heap shows ${floats.length} floats, fewer than the ${firstFloat + count} its data needs`);
      }
    }
  }

  /**
   * Sums (or maxes) this member's block of every member's input into outByte (this member's heap), in the
   * slot forms' order: its own part first, then the others' in member order. With `push`, each summed
   * chunk, still in cache, is also written into the same place of every other member's output (an
   * all-reduce: no member then reads another's output, and no second pass over the block). Returns the
   * block length.
   */
  private reduceOwnBlockFromHeaps(xByte: number, outByte: number, n: number, op: "sum" | "max", push = false): number {
    const { own, scratch } = this.heaps!;
    const { first, end } = this.block(n);
    const count = end - first;
    const kernel = op === "sum" ? scratch.kernels.add : scratch.kernels.max;
    const mine = new Float32Array(own.buffer);
    const inputs = this.peerBlocks(0, first, count);
    const outputs = push ? this.peerBlocks(1, first, count) : [];
    for (let c = 0; c < count; c += scratch.floats) {
      const m = Math.min(scratch.floats, count - c);
      let a = xByte + 4 * (first + c);
      for (const input of inputs) {
        mine.set(input.floats.subarray(input.at + c, input.at + c + m), scratch.byte / 4);
        kernel(a, scratch.byte, outByte + 4 * c, m);
        a = outByte + 4 * c;
      }
      for (const o of outputs) o.floats.set(mine.subarray(outByte / 4 + c, outByte / 4 + c + m), o.at + c);
    }
    return count;
  }

  /** Copies block k of member k's buffer (at byte `from(k)` of its heap) into block k of yByte, for every other member k. */
  private copyBlocksFromHeaps(yByte: number, n: number, from: (member: number) => number): void {
    const mine = new Float32Array(this.heaps!.own.buffer);
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      const { first, end } = this.block(n, k);
      const at = from(k) / 4;
      mine.set(this.heapFloats(k, at, end - first).subarray(at, at + end - first), yByte / 4 + first);
    }
  }

  /**
   * Every other member's heap, in member order, with the float where [first, first + count) of the
   * buffer it published for this call (0: its input, 1: its output) begins.
   */
  private peerBlocks(which: 0 | 1, first: number, count: number): { readonly floats: Float32Array; readonly at: number }[] {
    const blocks: { floats: Float32Array; at: number }[] = [];
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      const at = this.published(k, which) / 4 + first;
      blocks.push({ floats: this.heapFloats(k, at, count), at });
    }
    return blocks;
  }

  private bucketFloat(member: number, offsetFloats: number, n: number): number {
    const capacity = this.layout.bucketBytes / 4;
    if (offsetFloats < 0 || n < 0 || offsetFloats + n > capacity) {
      throw new Error(`internal: floats ${offsetFloats}..${offsetFloats + n} of the bucket of ${this.name} exceed its ${capacity}`);
    }
    return (this.layout.bucketByte + member * this.layout.bucketBytes) / 4 + offsetFloats;
  }

  private bucketBase(offsetFloats: number, n: number): (member: number) => number {
    this.bucketFloat(this.index, offsetFloats, n);
    return (k) => (this.layout.bucketByte + k * this.layout.bucketBytes) / 4 + offsetFloats;
  }

  private beginBucket(operation: Operation): number {
    this.status.set(operation, this.slot);
    this.waiter.takeIdleMs();
    this.calls++;
    return performance.now();
  }

  private stall(): void {
    if (this.readDelayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, this.readDelayMs);
  }

  /** Member k's buffer in slot buffer `buf`, as a float index of the fabric. */
  private slotBase(buf: number): (member: number) => number {
    return (k) => this.slotFloat(buf, k);
  }

  /** Copies block k of member k's buffer (base(k)) into this member's buffer, for every other member k. */
  private copyOtherBlocks(base: (member: number) => number, n: number): void {
    const mine = base(this.index);
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      const { first, end } = this.block(n, k);
      const at = base(k);
      this.kernels.copy(4 * (at + first), 4 * (mine + first), end - first);
    }
  }

  /** Sums (or maxes) block `index` of every member's buffer into this member's; returns the block length. */
  private reduceOwnBlock(base: (member: number) => number, n: number, op: "sum" | "max"): number {
    const { first, end } = this.block(n);
    const count = end - first;
    const kernel = op === "sum" ? this.kernels.add : this.kernels.max;
    const out = 4 * (base(this.index) + first);
    for (let k = 0; k < this.size; k++) {
      if (k === this.index) continue;
      kernel(out, 4 * (base(k) + first), out, count);
    }
    return count;
  }
}

/** Floats [first, first + count) of a flat vector, to be written at `byte` of a member's own heap. */
export interface HeapSegment {
  readonly first: number;
  readonly count: number;
  readonly byte: number;
}

/** How long a member keeps reading another's heap again while it looks too short (heapFloats). */
const HEAP_GROWTH_GRACE_MS = 100;

/** A buffer in a rank's own heap for staging other members' data, and the SIMD kernels on that heap. */
export interface HeapScratch {
  readonly byte: number;
  readonly floats: number;
  readonly kernels: Kernels;
  /** Collectives whose blocks have at least this many floats push them into the other members' outputs (Group.pushes). */
  readonly pushMinFloats: number;
}
