/**
 * The shared memory that ranks talk through: one shared WebAssembly.Memory (its buffer is a
 * SharedArrayBuffer, and the SIMD reduction kernels can address it) holding a control block, one region
 * per collective group (two buffers of one slot per member, then optionally one persistent bucket per
 * member) and one mailbox per point-to-point channel. The layout is a pure function of the
 * spec, so the coordinator and every worker compute the same offsets.
 */
export type CommKind = "tp" | "cp" | "pp" | "dp" | "ep";
export const COMM_KINDS: readonly CommKind[] = ["tp", "cp", "pp", "dp", "ep"];

export interface GroupSpec {
  /** Unique name, e.g. "tp[0,1]". */
  readonly name: string;
  readonly kind: CommKind;
  /** Global ranks, in member order. */
  readonly members: readonly number[];
  /** Largest buffer (floats) one member passes to a collective. */
  readonly capacityFloats: number;
  /**
   * Floats of one persistent region per member, after the two buffers of slots (none when absent or 0):
   * the data-parallel gradient bucket, which the training accumulates into and reduces in place
   * (Group.bucket and the *Bucket collectives; PyTorch DDP's gradient_as_bucket_view).
   */
  readonly bucketFloats?: number;
}

export interface ChannelSpec {
  readonly from: number;
  readonly to: number;
  readonly kind: CommKind;
  /** Messages that may wait in the mailbox at once. */
  readonly slots: number;
  readonly capacityFloats: number;
}

export interface FabricSpec {
  /** All ranks, workers and servers. */
  readonly ranks: number;
  readonly groups: readonly GroupSpec[];
  readonly channels: readonly ChannelSpec[];
}

/** Control words (Int32) at the start of the memory. */
export const CONTROL = {
  /** Non-zero once the run is being torn down: every wait throws. */
  abort: 0,
  /** Per rank: STATUS_WORDS words from statusBase + rank * STATUS_WORDS. */
  statusBase: 8,
} as const;
/** Per rank: [operation code, group or channel index, step, doorbell]. */
export const STATUS_WORDS = 4;
export const STATUS = { op: 0, target: 1, step: 2, doorbell: 3 } as const;

/** Per group member, after the arrival epochs: [input byte, output byte, element count, 1 if pushed] of a heap form (Group). */
export const HEAP_WORDS = 4;

const ALIGN_BYTES = 64;
const PAGE_BYTES = 65536;

function align(bytes: number): number {
  return Math.ceil(bytes / ALIGN_BYTES) * ALIGN_BYTES;
}

export interface GroupLayout {
  readonly spec: GroupSpec;
  /**
   * Int32 words: [bump, arrival epoch of member 0, member 1, ..., then per member the two heap byte
   * offsets, the element count and the form (pushed or pulled) it publishes for a heap collective (HEAP_WORDS)].
   */
  readonly controlByte: number;
  /** Byte offset of buffer `buf` (0 or 1), member `j`: dataByte + (buf * size + j) * slotBytes. */
  readonly dataByte: number;
  readonly slotBytes: number;
  /** Byte offset of member j's persistent bucket: bucketByte + j * bucketBytes (bucketBytes 0: none). */
  readonly bucketByte: number;
  readonly bucketBytes: number;
}

export interface ChannelLayout {
  readonly spec: ChannelSpec;
  /** Per slot, SLOT_HEADER_WORDS Int32 words: [state, tag, length, sequence]. */
  readonly headerByte: number;
  readonly dataByte: number;
  readonly slotBytes: number;
}
export const SLOT_HEADER_WORDS = 4;

export interface FabricLayout {
  readonly spec: FabricSpec;
  readonly groups: readonly GroupLayout[];
  readonly channels: readonly ChannelLayout[];
  readonly totalBytes: number;
}

export function layoutFabric(spec: FabricSpec): FabricLayout {
  let at = align(4 * (CONTROL.statusBase + spec.ranks * STATUS_WORDS));
  const groups = spec.groups.map((g): GroupLayout => {
    const controlByte = at;
    at = align(at + 4 * (1 + (1 + HEAP_WORDS) * g.members.length));
    const slotBytes = align(4 * g.capacityFloats);
    const dataByte = at;
    at += 2 * g.members.length * slotBytes;
    const bucketByte = at;
    const bucketBytes = align(4 * (g.bucketFloats ?? 0));
    at += g.members.length * bucketBytes;
    return { spec: g, controlByte, dataByte, slotBytes, bucketByte, bucketBytes };
  });
  const channels = spec.channels.map((c): ChannelLayout => {
    const headerByte = at;
    at = align(at + 4 * SLOT_HEADER_WORDS * c.slots);
    const slotBytes = align(4 * c.capacityFloats);
    const dataByte = at;
    at += c.slots * slotBytes;
    return { spec: c, headerByte, dataByte, slotBytes };
  });
  return { spec, groups, channels, totalBytes: at };
}

/** Allocates the fabric's memory (coordinator side); workers receive it through workerData. */
export function allocateFabric(layout: FabricLayout): WebAssembly.Memory {
  const pages = Math.max(1, Math.ceil(layout.totalBytes / PAGE_BYTES));
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/** Member j's block [first, end) of n elements split over g members: floor(j*n/g) to floor((j+1)*n/g). */
export function blockOf(n: number, g: number, j: number): { first: number; end: number } {
  return { first: Math.floor((j * n) / g), end: Math.floor(((j + 1) * n) / g) };
}
