import { upperMedian } from "../measure/stats.js";
import { attachFabric, type Endpoint } from "../comm/endpoint.js";
import { blockOf } from "../comm/fabric.js";
import type { ExpertGroup, GroupOps } from "../model/context.js";
import { loadBackend, type BackendChoice } from "./backend.js";
import type { HeapExchange, Program, WorkerInput } from "./protocol.js";
import { expertGroup, joinHeaps, tensorGroup } from "./tensor-group.js";
import { gatherIntoTensors } from "../parallel/state.js";
import { tensorFromShared } from "../model/ops.js";
import type { Tensor } from "@tensorflow/tfjs";
import type { TrafficSnapshot } from "../comm/traffic.js";

/**
 * A worker program that runs a script of collectives on deterministic inputs and returns what came out,
 * how long each took and what it sent: the collectives' tests, their fault tests and their benchmark.
 * Rank r's input element i is r + 1 + i / 1024 (exact in float32 for the sizes used).
 */
export type ProbeOp =
  | { readonly op: "all-reduce" | "all-reduce-max" | "reduce-scatter" | "all-gather" | "all-to-all" | "all-reduce-slot" | "all-gather-slot" | "all-reduce-view" | "reduce-scatter-view" | "all-gather-view"; readonly group: string; readonly n: number }
  /**
   * The gradient bucket's collectives (Group.bucket): the input is written into floats [offset, offset + n)
   * of this member's bucket (input of rank r + salt), then reduced in place; `readDelayMs` stalls this
   * member just before its last read of the others' buckets (the window a closing sync must cover).
   */
  | {
    readonly op: "all-reduce-bucket" | "reduce-scatter-bucket"; readonly group: string; readonly n: number;
    readonly offset?: number; readonly salt?: number; readonly readDelayMs?: number;
  }
  /**
   * The training path's tensor collectives (run/tensor-group.ts) on the wasm backend: the input becomes a
   * tensor of rank r's heap, and the result is read back from the output tensor. With ProbePayload.heap
   * and every member sharing its heap, Group's heap forms; otherwise the slot (*View) forms, and for the
   * all-to-all (expert parallel's, tensor-group.ts expertGroup) the copying one.
   */
  | { readonly op: "all-reduce-tensor" | "all-reduce-max-tensor" | "reduce-scatter-tensor" | "all-gather-tensor" | "all-to-all-tensor"; readonly group: string; readonly n: number }
  /**
   * A ZeRO weight gather as parallel/state.ts runs it: this member's block of n floats (a unit's master)
   * gathered into 4 new tensors of n/4 floats (its parameters). With the heaps shared, the block lies in
   * the heap and Group.allGatherHeapInto fills the tensors; otherwise the view form, then a copy into each.
   */
  | { readonly op: "all-gather-params-tensor"; readonly group: string; readonly n: number }
  | { readonly op: "send"; readonly to: number; readonly tag: number; readonly n: number }
  | { readonly op: "recv"; readonly from: number; readonly tag: number }
  | { readonly op: "barrier"; readonly group: string }
  | { readonly op: "throw" | "exit" | "hang" };

export interface ProbePayload {
  readonly script: readonly ProbeOp[];
  /** Times each op runs (the last run's output is kept); default 1. */
  readonly repeat?: number;
  /** Keep outputs (false for benchmarks). */
  readonly keepOutputs?: boolean;
  /** Refill the input before every repeat (default true); false times the collectives back to back, as nccl-tests does. */
  readonly refill?: boolean;
  /**
   * For the *-tensor ops: load the wasm backend with its heap shared (shared-heap.ts) and offer it to the
   * other ranks (the rank must be launched with shareHeap). Absent or false: an unshared heap.
   */
  readonly heap?: boolean;
  /** Then allocate a tensor of this many bytes, kept to the end, so the heap grows after the exchange. */
  readonly growBytes?: number;
  /** And one more of this many bytes before each run of a *-tensor op: the heap grows between collectives. */
  readonly growBytesPerOp?: number;
  /** Inputs whose sums round (seededInput) instead of probeInput's exact ones: the order of summation shows. */
  readonly seeded?: boolean;
  /** The backend of the *-tensor ops (default wasm). */
  readonly backend?: BackendChoice;
  /** The heap forms push blocks of at least this many floats (default tensor-group.ts's; a test lowers it to run that form on small data). */
  readonly pushMinFloats?: number;
}

export interface ProbeResult {
  readonly outputs: (number[] | null)[];
  /** Median seconds per run of each op. */
  readonly seconds: number[];
  readonly traffic: TrafficSnapshot;
  /** The groups whose *-tensor ops ran in Group's heap forms. */
  readonly heapForms: readonly string[];
  /** Of those groups' heap collectives, how many pushed their blocks into the other ranks' outputs (Group.pushes). */
  readonly pushed: number;
}

/** Rank r's input i: deterministic values of mixed magnitude whose float32 sums depend on their order. */
export function seededInput(rank: number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin((rank + 1) * 12.9898 + i * 78.233) * 10 ** ((i + rank) % 7 - 3);
  return x;
}

export function probeInput(rank: number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rank + 1 + i / 1024;
  return x;
}

/** The wasm backend and each group's tensor collectives, for the *-tensor ops. */
async function tensorSide(input: WorkerInput, payload: ProbePayload, ep: Endpoint, exchangeHeaps: HeapExchange) {
  const loaded = await loadBackend(payload.backend ?? "wasm", input.fabric.ranks, { sharedHeap: payload.heap === true, sharedBinary: input.sharedBinary });
  const tf = loaded.tf;
  const heap = await joinHeaps(loaded, input, exchangeHeaps, payload.pushMinFloats);
  const grown = payload.growBytes === undefined ? [] : [tf.zeros([payload.growBytes / 4])];
  const ops = new Map<string, GroupOps>();
  const experts = new Map<string, ExpertGroup>();
  const sources = new Map<string, { readonly view: Float32Array; readonly byte: number }>();
  return {
    tf,
    heap,
    group: (name: string) => ep.group(name),
    /** One heap buffer per group and size, kept to the end (the ZeRO master it stands for persists too). */
    source(name: string, floats: number) {
      const key = `${name} ${floats}`;
      if (!sources.has(key)) sources.set(key, heap!.buffer(floats));
      return sources.get(key)!;
    },
    heapForms: (name: string) => ep.group(name).heapForms,
    barrier: (name: string) => ep.group(name).barrier(),
    grow() {
      if (payload.growBytesPerOp !== undefined) grown.push(tf.zeros([payload.growBytesPerOp / 4]));
    },
    ops(name: string): GroupOps {
      if (!ops.has(name)) ops.set(name, tensorGroup(tf, ep.group(name), heap));
      return ops.get(name)!;
    },
    experts(name: string): ExpertGroup {
      if (!experts.has(name)) experts.set(name, expertGroup(tf, ep.group(name), heap)!);
      return experts.get(name)!;
    },
    dispose() {
      tf.dispose(grown);
      heap?.dispose();
    },
  };
}

/**
 * Runs one *-tensor op on x; returns the output's values (when kept) and the collective's seconds (the
 * input's making and the read-back untimed; a benchmark keeps no output, so it allocates no array per run).
 */
function tensorOp(side: Awaited<ReturnType<typeof tensorSide>>, op: ProbeOp & { readonly group: string; readonly n: number }, x: Float32Array, keep: boolean): { out: Float32Array | null; seconds: number } {
  const { tf } = side;
  const g = side.ops(op.group);
  const block = blockOf(op.n, g.size, g.rank);
  if (op.op === "all-to-all-tensor" && op.n % g.size !== 0) throw new Error(`probe: an all-to-all of ${op.n} floats over ${g.size} ranks`);
  side.grow();
  const input = op.op === "all-gather-tensor" ? tf.tensor(x.subarray(block.first, block.end), [block.end - block.first, 1]) : tf.tensor(x, [op.n, 1]);
  // Every member starts the clock together: making the input and reading the last output back (untimed)
  // take as long as the collective itself, and a member still at them would count in the others' time.
  side.barrier(op.group);
  const t0 = performance.now();
  const y = op.op === "all-reduce-tensor" ? g.allReduce(input, "probe")
    : op.op === "all-reduce-max-tensor" ? g.allReduceMax(input, "probe")
      : op.op === "reduce-scatter-tensor" ? g.reduceScatter(input, "probe")
        : op.op === "all-to-all-tensor" ? side.experts(op.group).allToAll(input, "probe")
          : g.allGather(input, "probe");
  const seconds = (performance.now() - t0) / 1e3;
  const out = keep ? (y.dataSync() as Float32Array) : null;
  tf.dispose([input, y]);
  return { out, seconds };
}

/** Runs an all-gather-params-tensor op on x: the outputs' values (when kept) and the gather's seconds. */
function paramsGatherOp(side: Awaited<ReturnType<typeof tensorSide>>, op: ProbeOp & { readonly group: string; readonly n: number }, x: Float32Array, keep: boolean): { out: Float32Array | null; seconds: number } {
  const { tf } = side;
  const g = side.group(op.group);
  const block = blockOf(op.n, g.size, g.index);
  const q = op.n / 4;
  const heapForms = side.heap !== undefined && side.heap.enable(g);
  const source = heapForms ? side.source(op.group, block.end - block.first) : undefined;
  source?.view.set(x.subarray(block.first, block.end));
  side.barrier(op.group);
  const t0 = performance.now();
  let tensors: Tensor[];
  if (source !== undefined) {
    tensors = gatherIntoTensors(side.heap!, g, source.byte, op.n, [0, 1, 2, 3].map((i) => ({ offset: i * q, size: q, shape: [q, 1] })), "probe");
  } else {
    const full = g.allGatherView(x.subarray(block.first, block.end), op.n, "probe");
    tensors = [0, 1, 2, 3].map((i) => tensorFromShared(tf, full.subarray(i * q, (i + 1) * q), [q, 1]));
  }
  const seconds = (performance.now() - t0) / 1e3;
  const out = keep ? new Float32Array(tensors.flatMap((t) => Array.from(t.dataSync() as Float32Array))) : null;
  tf.dispose(tensors);
  return { out, seconds };
}

export const probeProgram: Program = async (input, _progress, exchangeHeaps) => {
  const payload = input.payload as ProbePayload;
  const ep = attachFabric(input.memory, input.fabric, input.rank, input.timeoutSeconds);
  const tensors = payload.script.some((op) => op.op.endsWith("-tensor")) ? await tensorSide(input, payload, ep, exchangeHeaps) : undefined;
  const outputs: (number[] | null)[] = [];
  const seconds: number[] = [];
  const repeat = payload.repeat ?? 1;
  for (const op of payload.script) {
    let out: Float32Array | null = null;
    const times: number[] = [];
    const inputs = "n" in op ? (payload.seeded === true ? seededInput : probeInput)(input.rank + ("salt" in op ? op.salt ?? 0 : 0), op.n) : null;
    for (let r = 0; r < repeat; r++) {
      const fill = r === 0 || payload.refill !== false;
      const x = inputs === null ? null : fill ? inputs.slice() : inputs;
      const t0 = performance.now();
      switch (op.op) {
        case "all-reduce": out = ep.group(op.group).allReduce(x!, "probe"); break;
        case "all-reduce-max": out = ep.group(op.group).allReduce(x!, "probe", "max"); break;
        case "reduce-scatter": out = ep.group(op.group).reduceScatter(x!, "probe"); break;
        // all-gather-view: the view form (copy in once, in place, result read from the slot), as the
        // all-reduce-view and reduce-scatter-view below: training's with unshared heaps.
        case "all-gather":
        case "all-gather-view": {
          const g = ep.group(op.group);
          const b = g.block(op.n);
          const mine = x!.subarray(b.first, b.end);
          out = op.op === "all-gather" ? g.allGather(mine, op.n, "probe") : g.allGatherView(mine, op.n, "probe");
          break;
        }
        case "all-to-all": out = ep.group(op.group).allToAll(x!, "probe"); break;
        case "all-reduce-view": out = ep.group(op.group).allReduceView(x!, "probe"); break;
        case "reduce-scatter-view": out = ep.group(op.group).reduceScatterView(x!, "probe"); break;
        case "all-reduce-slot": {
          const g = ep.group(op.group);
          if (fill) g.nextSlot(op.n).set(x!);
          const t1 = performance.now();
          out = g.allReduceSlot(op.n, "probe");
          times.push((performance.now() - t1) / 1e3);
          continue;
        }
        case "all-gather-slot": {
          const g = ep.group(op.group);
          const b = g.block(op.n);
          if (fill) g.nextSlot(op.n).set(x!.subarray(b.first, b.end), b.first);
          const t1 = performance.now();
          out = g.allGatherSlot(op.n, "probe");
          times.push((performance.now() - t1) / 1e3);
          continue;
        }
        // The training path's gradient reduction: accumulated in the bucket, reduced in place, read in place.
        case "all-reduce-bucket":
        case "reduce-scatter-bucket": {
          const g = ep.group(op.group);
          const offset = op.offset ?? 0;
          if (fill) g.bucket(offset, op.n).set(x!);
          g.readDelayMs = op.readDelayMs ?? 0;
          const t1 = performance.now();
          out = op.op === "all-reduce-bucket" ? g.allReduceBucket(offset, op.n, "probe") : g.reduceScatterBucket(offset, op.n, "probe");
          times.push((performance.now() - t1) / 1e3);
          g.readDelayMs = 0;
          continue;
        }
        case "all-reduce-tensor":
        case "all-reduce-max-tensor":
        case "reduce-scatter-tensor":
        case "all-gather-tensor":
        case "all-to-all-tensor":
        case "all-gather-params-tensor": {
          const r = (op.op === "all-gather-params-tensor" ? paramsGatherOp : tensorOp)(tensors!, op, x!, payload.keepOutputs !== false);
          out = r.out;
          times.push(r.seconds);
          continue;
        }
        case "send": ep.channel(input.rank, op.to).send(op.tag, x!, "probe"); break;
        case "recv": out = ep.channel(op.from, input.rank).recv(op.tag, "probe"); break;
        case "barrier": ep.group(op.group).barrier(); break;
        case "throw": throw new Error("injected fault");
        case "exit": process.exit(3);
        // eslint-disable-next-line no-fallthrough
        case "hang": Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); break;
      }
      times.push((performance.now() - t0) / 1e3);
    }
    outputs.push(payload.keepOutputs === false || out === null ? null : Array.from(out as Float32Array));
    seconds.push(upperMedian(times));
  }
  const heapForms = tensors === undefined ? [] : [...new Set(payload.script.flatMap((op) => ("group" in op && op.op.endsWith("-tensor") ? [op.group] : [])))].filter((g) => tensors.heapForms(g));
  const pushed = heapForms.reduce((a, g) => a + ep.group(g).pushedCalls, 0);
  tensors?.dispose();
  return { outputs, seconds, traffic: ep.traffic.snapshot(), heapForms, pushed } satisfies ProbeResult;
};
