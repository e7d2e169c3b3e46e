import { availableParallelism, loadavg } from "node:os";
import type { FabricSpec } from "../src/executor/comm/fabric.js";
import type { ProbeOp, ProbeResult } from "../src/executor/run/probe.js";
import { memcpyBytesPerSecond } from "../src/executor/measure/calibrate.js";
import { readNow } from "../src/executor/model/ops.js";
import { loadBackend } from "../src/executor/run/backend.js";
import { launch } from "../src/executor/run/launch.js";
import { median, timePerCall, type BenchRow } from "./util.js";
import { copyCeiling } from "./copy-ceiling.js";

/**
 * The executor's speed targets (issue 5):
 * - collectives over shared memory move data at no less than half of this machine's memcpy bandwidth for
 *   buffers of 4 MiB and more: NCCL's bus bandwidth (nccl-tests doc/PERFORMANCE.md: all-reduce
 *   2(n-1)/n S / t, all-gather, reduce-scatter and all-to-all (n-1)/n S / t) of two ranks, against one
 *   thread's TypedArray.set; the tensor-, context- and expert-parallel collectives as the training runs them
 *   (tensor to tensor, reading the other ranks' shared wasm heaps: Group's heap forms) first, then the data-parallel
 *   gradient reduction as the training runs it (in place in the gradient bucket, Group.allReduceBucket /
 *   reduceScatterBucket), then the other forms;
 * - with as many ranks as cores, each rank keeps at least 80% of the matrix-multiply throughput (float32,
 *   256^3, TensorFlow.js wasm) that one rank has alone.
 * Medians over repeated runs; the ratio column is measured / target (>= 1 meets it).
 *
 * This machine's memory bandwidth is not one number: on the 2-core development VM one thread's 64 MiB copy
 * measured 11.3 GB/s at the start of a bench run and 16-23 GB/s a minute later (15 samples 0.3 s apart on
 * 2026-11-24: 22.3 23.3 22.8 23.2 20.6 23.1 16.4 16.3 15.9 16.1 23.3 22.9 22.1 22.6 22.8), so a collective
 * compared with a copy timed once, minutes away, passed or failed with the neighbours' load. Each collective
 * row is therefore LAUNCHES launches, each between two memcpy measurements, and its ratio the median of
 * (bus bandwidth / the mean of the two copies around it): the same memory, the same minute.
 */
const MIB = 2 ** 20;
const REPEAT = 21;
/** Launches per collective row, each timed between two memcpy measurements (againstMemcpy). */
const LAUNCHES = 3;
/** The memcpy reference: one thread copying 64 MiB (out of cache), median of this many copies. */
const REFERENCE_BYTES = 64 * MIB;
const REFERENCE_REPEAT = 9;

/** A measured bandwidth and its share of the memcpy bandwidth measured around it (both medians over the launches). */
interface Paired {
  readonly bytesPerSecond: number;
  readonly ofMemcpy: number;
  /** The memcpy measurements taken around the launches. */
  readonly references: readonly number[];
}

/** Runs `measure` LAUNCHES times, each between two memcpy measurements (see the header). */
async function againstMemcpy(measure: () => Promise<number>): Promise<Paired> {
  const bandwidths: number[] = [];
  const shares: number[] = [];
  const references: number[] = [];
  for (let i = 0; i < LAUNCHES; i++) {
    const before = memcpyBytesPerSecond(REFERENCE_BYTES, REFERENCE_REPEAT);
    const bw = await measure();
    const after = memcpyBytesPerSecond(REFERENCE_BYTES, REFERENCE_REPEAT);
    bandwidths.push(bw);
    shares.push(bw / ((before + after) / 2));
    references.push(before, after);
  }
  return { bytesPerSecond: median(bandwidths), ofMemcpy: median(shares), references };
}

function gb(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`;
}

type BenchOp = "all-reduce-bucket" | "reduce-scatter-bucket" | "all-reduce-slot" | "all-gather-slot" | "all-reduce" | "all-reduce-view" | "reduce-scatter-view" | "all-gather-view"
  | "all-reduce-tensor" | "reduce-scatter-tensor" | "all-gather-tensor" | "all-gather-params-tensor" | "all-to-all-tensor";

/** heap: the *-tensor ops with the ranks' wasm heaps shared (Group's heap forms), else through the slots. */
async function collectiveBusBandwidth(ranks: number, op: BenchOp, bytes: number, heap = false): Promise<number> {
  const n = bytes / 4;
  const members = Array.from({ length: ranks }, (_, r) => r);
  const bucket = op.endsWith("-bucket");
  const group = bucket ? { capacityFloats: 16, bucketFloats: n } : { capacityFloats: n };
  const fabric: FabricSpec = { ranks, groups: [{ name: "all", kind: "dp", members, ...group }], channels: [] };
  const script: ProbeOp[] = [{ op, group: "all", n }];
  // The copying and view forms read the caller's array, which the collective does not change (the
  // copying all-reduce writes its result back, so it is refilled each time, outside the timing). The
  // bucket and slot forms reduce in place, back to back, as nccl-tests does; the bucket forms' time
  // includes their closing sync.
  // The tensor forms time from the input tensor to the output tensor (input made and output read untimed).
  const tensor = op.endsWith("-tensor");
  const payload = { script, repeat: REPEAT, keepOutputs: false, refill: op === "all-reduce", heap };
  const res = (await launch({ fabric, timeoutSeconds: 60, ranks: members.map(() => ({ program: "probe" as const, payload, shareHeap: tensor })) })) as ProbeResult[];
  if (tensor && res.some((r) => (r.heapForms.length > 0) !== heap)) throw new Error(`bench: ${op} ran ${heap ? "without" : "in"} the heap forms`);
  const seconds = Math.max(...res.map((r) => r.seconds[0]!));
  const factor = op.startsWith("all-reduce") ? (2 * (ranks - 1)) / ranks : (ranks - 1) / ranks;
  return (factor * bytes) / seconds;
}

async function matmulPerRank(ranks: number, n: number, seconds: number): Promise<number> {
  const members = Array.from({ length: ranks }, (_, r) => r);
  const fabric: FabricSpec = { ranks, groups: [{ name: "all", kind: "dp", members, capacityFloats: 16 }], channels: [] };
  const payload = { backend: "wasm", n, seconds };
  const rates = (await launch({ fabric, timeoutSeconds: 120, ranks: members.map(() => ({ program: "matmul" as const, payload })) })) as number[];
  return rates.reduce((a, b) => a + b, 0) / rates.length;
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const cores = availableParallelism();
  rows.push({ name: `machine: ${cores} cores, load average before the run`, target: "-", median: loadavg()[0]!.toFixed(2), ratio: "-" });
  // The reference is memory bandwidth: one thread copying 64 MiB (out of cache), measured around each
  // collective (againstMemcpy); every reference taken is summarized below. Smaller copies run from the
  // caches and are shown for comparison.
  const references: number[] = [];
  const paired = async (measure: () => Promise<number>): Promise<Paired> => {
    const p = await againstMemcpy(measure);
    references.push(...p.references);
    return p;
  };
  const at = rows.length;
  rows.push({ name: "memcpy, one thread, 4 MiB (from cache; for comparison)", target: "-", median: gb(memcpyBytesPerSecond(4 * MIB, 41)), ratio: "-" });
  // The ceiling of the tensor-to-tensor forms: two threads doing nothing but an all-gather's copies.
  for (const mib of [4, 16, 64]) {
    let copyPerThread = 0;
    const ceiling = await paired(async () => {
      const c = await copyCeiling(mib * MIB, REPEAT);
      copyPerThread = c.copyPerThread;
      return c.allGatherBus;
    });
    rows.push({ name: `ceiling, 2 threads, ${mib} MiB: an all-gather's copies alone (bus bandwidth); memcpy per thread with both copying (last launch)`, target: "-", median: `${gb(ceiling.bytesPerSecond)}; ${gb(copyPerThread)}`, ratio: `${ceiling.ofMemcpy.toFixed(2)} x memcpy` });
  }
  const names: Record<BenchOp, string> = {
    "all-reduce-bucket": "ZeRO-0 gradient all-reduce as training runs it (accumulated in the dp bucket, reduced and read in place)",
    "reduce-scatter-bucket": "ZeRO-1/2/3 gradient reduce-scatter as training runs it (accumulated in the dp bucket, reduced and read in place)",
    "all-reduce-slot": "all-reduce, in place (data already in the slot)",
    "all-gather-slot": "all-gather, in place (data already in the slot)",
    "all-reduce-view": "all-reduce, copy in from an array (the view form: tp and cp with unshared heaps)",
    "reduce-scatter-view": "reduce-scatter, copy in from an array (the view form: tp under SP and cp with unshared heaps)",
    "all-gather-view": "all-gather, copy in (the view form: the ZeRO weight gathers; tp and cp with unshared heaps)",
    "all-reduce": "all-reduce, copying in and out (the SP gradient sum; no longer the ZeRO-0 gradients)",
    "all-reduce-tensor": "tp/cp all-reduce as training runs it, tensor to tensor",
    "reduce-scatter-tensor": "tp/cp reduce-scatter as training runs it, tensor to tensor",
    "all-gather-tensor": "tp/cp all-gather as training runs it, tensor to tensor",
    "all-gather-params-tensor": "ZeRO weight gather as training runs it, master block to 4 parameter tensors",
    "all-to-all-tensor": "ep all-to-all as training runs it, tensor to tensor",
  };
  const row = (name: string, mib: number, p: Paired): BenchRow =>
    ({ name: `${name}, 2 ranks, ${mib} MiB: bus bandwidth`, target: "0.5 x memcpy", median: `${gb(p.bytesPerSecond)} (${p.ofMemcpy.toFixed(2)} x)`, ratio: (p.ofMemcpy / 0.5).toFixed(2) });
  for (const mib of [4, 16, 64]) {
    // The tensor- and context-parallel collectives as training runs them (run/tensor-group.ts): reading
    // the other ranks' shared wasm heaps, then (for comparison) through the slots with unshared heaps.
    for (const heap of [true, false]) {
      for (const op of ["all-reduce-tensor", "reduce-scatter-tensor", "all-gather-tensor", "all-gather-params-tensor", "all-to-all-tensor"] as const) {
        const how = heap ? "in the ranks' shared wasm heaps" : "unshared heaps: copied into the slot and out into a new tensor";
        rows.push(row(`${names[op]} (${how})`, mib, await paired(() => collectiveBusBandwidth(2, op, mib * MIB, heap))));
      }
    }
    const ops: BenchOp[] = mib === 16 ? ["all-reduce-view", "reduce-scatter-view", "all-gather-view"]
      : ["all-reduce-bucket", "reduce-scatter-bucket", "all-reduce-slot", "all-gather-slot", "all-reduce-view", "reduce-scatter-view", "all-gather-view", "all-reduce"];
    for (const op of ops) rows.push(row(names[op], mib, await paired(() => collectiveBusBandwidth(2, op, mib * MIB))));
  }
  const sorted = [...references].sort((a, b) => a - b);
  rows.splice(at, 0, {
    name: `memcpy, one thread, 64 MiB (the reference; ${references.length} measurements, two around each launch below: lowest-highest)`,
    target: "-", median: `${gb(median(references))} (${gb(sorted[0]!)}-${gb(sorted[sorted.length - 1]!)})`, ratio: "-",
  });
  // How a tensor's values reach a slot (the pipeline's sends; tp and cp with unshared heaps): dataSync's fresh buffer, then the
  // copy, against the copy straight out of the wasm heap (ops.ts readNow). No target: the ratio is shown.
  const { tf } = await loadBackend("wasm", 1);
  for (const mib of [4, 64]) {
    const x = tf.randomUniform([(mib * MIB) / 4]);
    const slot = new Float32Array(new SharedArrayBuffer(mib * MIB));
    const viaDataSync = timePerCall(() => slot.set(x.dataSync() as Float32Array), 1, REPEAT);
    const viaHeap = timePerCall(() => slot.set(readNow(tf, x)), 1, REPEAT);
    rows.push({ name: `a ${mib} MiB tensor into a shared-memory slot: dataSync then copy / straight from the wasm heap`, target: "-", median: `${gb((mib * MIB) / viaDataSync)} / ${gb((mib * MIB) / viaHeap)}`, ratio: `${(viaDataSync / viaHeap).toFixed(1)} x faster` });
    x.dispose();
  }
  const alone = await matmulPerRank(1, 256, 1.5);
  const together = await matmulPerRank(cores, 256, 1.5);
  rows.push({ name: "matmul 256^3, one rank alone", target: "-", median: `${(alone / 1e9).toFixed(2)} GFLOP/s`, ratio: "-" });
  rows.push({
    name: `matmul 256^3, per rank with ${cores} ranks (= cores)`, target: `${(0.8 * alone / 1e9).toFixed(2)} GFLOP/s (0.8 x alone)`,
    median: `${(together / 1e9).toFixed(2)} GFLOP/s (${(together / alone).toFixed(2)} x)`, ratio: (together / alone / 0.8).toFixed(2),
  });
  return rows;
}
