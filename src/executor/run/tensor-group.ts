import type { Tensor } from "@tensorflow/tfjs";
import type { Group, HeapScratch } from "../comm/group.js";
import { kernels } from "../comm/kernels.js";
import { soloGroup, type ExpertGroup, type GroupOps } from "../model/context.js";
import { readNow, tensorFromShared, type Tf } from "../model/ops.js";
import type { LoadedBackend } from "./backend.js";
import type { HeapExchange, WorkerInput } from "./protocol.js";

/**
 * The model's view of a shared-memory group: tensors in, tensors out. Row blocks: all-gather stacks every
 * member's rows in member order, reduce-scatter keeps this member's 1/size of the rows.
 *
 * Two paths. When every member's wasm heap is shared (HeapPath, shared-heap.ts), the collective reads
 * the input tensors where TensorFlow.js put them and writes the result into a tensor allocated for it
 * (Group's heap forms): no copy into the fabric and none out of it. Otherwise data leaves TensorFlow.js
 * through readNow (a view of the wasm heap; dataSync elsewhere), is copied once into this rank's slot,
 * the collective runs in place there (Group's *View forms), and the result becomes a new tensor
 * copied from the slot.
 */
export function tensorGroup(tf: Tf, group: Group | undefined, heap?: HeapPath): GroupOps {
  if (group === undefined || group.size === 1) return soloGroup(tf);
  const rowsShape = (x: Tensor, rows: number) => [rows, ...x.shape.slice(1)];
  const checkRows = (x: Tensor) => {
    if (x.shape[0]! % group.size !== 0) throw new Error(`internal: reduce-scatter of ${x.shape[0]} rows over ${group.size} ranks`);
  };
  if (heap !== undefined && heap.enable(group)) {
    return {
      size: group.size,
      rank: group.index,
      allReduce: (x, purpose) => heap.run(x, x.shape, (xb, yb) => group.allReduceHeap(xb, yb, x.size, purpose)),
      allReduceMax: (x, purpose) => heap.run(x, x.shape, (xb, yb) => group.allReduceHeap(xb, yb, x.size, purpose, "max")),
      allGather: (x, purpose) => heap.run(x, rowsShape(x, x.shape[0]! * group.size), (xb, yb) => group.allGatherHeap(xb, yb, x.size, x.size * group.size, purpose)),
      reduceScatter: (x, purpose) => {
        checkRows(x);
        return heap.run(x, rowsShape(x, x.shape[0]! / group.size), (xb, yb) => group.reduceScatterHeap(xb, yb, x.size, purpose));
      },
    };
  }
  // each *View form copies its input into the slot before anything else runs, as readNow requires
  const data = (x: Tensor) => readNow(tf, x);
  return {
    size: group.size,
    rank: group.index,
    allReduce: (x, purpose) => tensorFromShared(tf, group.allReduceView(data(x), purpose), x.shape),
    allReduceMax: (x, purpose) => tensorFromShared(tf, group.allReduceView(data(x), purpose, "max"), x.shape),
    allGather: (x, purpose) => {
      const d = data(x);
      return tensorFromShared(tf, group.allGatherView(d, d.length * group.size, purpose), rowsShape(x, x.shape[0]! * group.size));
    },
    reduceScatter: (x, purpose) => {
      checkRows(x);
      return tensorFromShared(tf, group.reduceScatterView(data(x), purpose), rowsShape(x, x.shape[0]! / group.size));
    },
  };
}

/**
 * The model's view of an expert-parallel group, or undefined for a group of one: its all-to-all, from the
 * input tensor to a new one. When every member's heap is shared, Group's heap form (each member reads its
 * blocks from the others' input tensors where they lie); otherwise through the slots (readNow's view copied
 * in, the result copied out into a new tensor).
 */
export function expertGroup(tf: Tf, group: Group | undefined, heap?: HeapPath): ExpertGroup | undefined {
  if (group === undefined || group.size === 1) return undefined;
  const viaHeap = heap !== undefined && heap.enable(group);
  return {
    size: group.size,
    rank: group.index,
    allToAll: viaHeap
      ? (x, purpose) => heap.run(x, x.shape, (xb, yb) => group.allToAllHeap(xb, yb, x.size, purpose))
      : (x, purpose) => tensorFromShared(tf, group.allToAll(readNow(tf, x), purpose), x.shape),
  };
}

/** The parts of tfjs-backend-wasm's BackendWasm the heap path uses (public methods of its class). */
interface WasmBackend {
  makeOutput(shape: number[], dtype: "float32"): { dataId: object; shape: number[]; dtype: "float32" };
  typedArrayFromHeap(t: { shape: number[]; dtype: string; dataId: object }): Float32Array;
  disposeData(dataId: object, force?: boolean): boolean;
}

interface TrackingEngine {
  makeTensorFromTensorInfo(info: { dataId: object; shape: number[]; dtype: "float32" }): Tensor;
}

/**
 * Floats of the staging buffer (128 KiB): large enough that a call per chunk costs nothing, small enough
 * to stay in a core's L2 cache, so the staged copy is read back from cache, not memory. Between 8 Ki and
 * 64 Ki floats the prototype's timings differed less than the machine's noise (src/executor/README.md, Speed).
 */
const SCRATCH_FLOATS = 32768;

/**
 * Blocks of at least this many floats (16 MiB) are pushed into the other ranks' outputs rather than
 * pulled from their inputs (Group.pushes). Measured with the bench's tensor rows, 2 ranks, alternating
 * the two forms (2026-11-23, AMD EPYC, 2 cores, 1 MiB L2 per core, 32 MiB L3): at 64 MiB pushing gave
 * the all-gather about 15% more bandwidth, the ZeRO gather 0-30% (the block read from memory once) and
 * the all-reduce about the same; the ZeRO gather about 15% more at 16 MiB blocks; at 0.125-8 MiB blocks
 * pulling was as fast or faster (the data in the caches; a push writes lines the owner holds).
 */
const PUSH_MIN_FLOATS = 4 * 2 ** 20;

/** A rank's side of the heap forms: its heap, every rank's, its staging buffer and its kernels. */
export interface HeapPath {
  /** Enables the group's heap forms if every member shares its heap (Group.useHeaps). */
  enable(group: Group): boolean;
  /**
   * Allocates the output tensor in this rank's heap, runs `collective` on the input's and the output's
   * byte offsets, and returns the output.
   */
  run(x: Tensor, shape: number[], collective: (xByte: number, yByte: number) => void): Tensor;
  /**
   * A float32 buffer of this rank's heap that lives until dispose, untracked by TensorFlow.js (model
   * state kept outside it, as the ZeRO master and shard are), as a view and its byte offset. The heap
   * is shared, so the view stays valid when the heap grows.
   */
  buffer(floats: number): { readonly view: Float32Array; readonly byte: number };
  /**
   * New tensors of these shapes, allocated in this rank's heap and handed by byte offset to `fill` (a
   * collective writing them); disposed again if it throws.
   */
  filled(shapes: readonly (readonly number[])[], fill: (bytes: number[]) => void): Tensor[];
  dispose(): void;
}

/**
 * A rank's heap path, if its input says it shares its heap: offers its heap (or none) to the others and,
 * once every sharing rank has, builds the path on it; undefined when it shares none or has none to share.
 */
export async function joinHeaps(loaded: LoadedBackend, input: WorkerInput, exchangeHeaps: HeapExchange, pushMinFloats?: number): Promise<HeapPath | undefined> {
  const heaps = input.shareHeap === true ? await exchangeHeaps(loaded.heap) : undefined;
  return loaded.heap === undefined || heaps === undefined ? undefined : heapPath(loaded.tf, loaded.heap, heaps, pushMinFloats);
}

/** The heap path of a rank whose own heap is `own`, given every rank's (protocol.ts HeapExchange). */
export function heapPath(tf: Tf, own: WebAssembly.Memory, heaps: readonly (WebAssembly.Memory | null)[], pushMinFloats = PUSH_MIN_FLOATS): HeapPath {
  const backend = tf.backend() as unknown as WasmBackend;
  const engine = tf.engine() as unknown as TrackingEngine;
  // Untracked by the engine: a communication buffer, as NCCL's, not a tensor of the model.
  const staging = backend.makeOutput([SCRATCH_FLOATS], "float32");
  const kept: { dataId: object; shape: number[]; dtype: "float32" }[] = [];
  const filled: HeapPath["filled"] = (shapes, fill) => {
    const infos = shapes.map((shape) => backend.makeOutput([...shape], "float32"));
    const tensors = infos.map((info) => engine.makeTensorFromTensorInfo(info));
    try {
      fill(infos.map((info) => backend.typedArrayFromHeap(info).byteOffset));
    } catch (e) {
      for (const t of tensors) t.dispose();
      throw e;
    }
    return tensors;
  };
  const scratch: HeapScratch = { byte: backend.typedArrayFromHeap(staging).byteOffset, floats: SCRATCH_FLOATS, kernels: kernels(own), pushMinFloats };
  return {
    enable: (group) => group.useHeaps(own, heaps, scratch),
    run(x, shape, collective) {
      if (x.dtype !== "float32") throw new Error(`internal: a heap collective of a ${x.dtype} tensor`);
      const xByte = backend.typedArrayFromHeap(x as unknown as { shape: number[]; dtype: string; dataId: object }).byteOffset;
      return filled([shape], ([yByte]) => collective(xByte, yByte!))[0]!;
    },
    buffer(floats) {
      const info = backend.makeOutput([floats], "float32");
      kept.push(info);
      const view = backend.typedArrayFromHeap(info);
      return { view, byte: view.byteOffset };
    },
    filled,
    dispose: () => {
      for (const info of [staging, ...kept]) backend.disposeData(info.dataId, true);
    },
  };
}
