import type { Worker } from "node:worker_threads";
import { allocateFabric, CONTROL, layoutFabric, type FabricSpec } from "../comm/fabric.js";
import { readStatus, type StatusReading } from "../comm/sync.js";
import type { FromWorker, HeapsMessage, PassCount, ProgramName, WorkerInput } from "./protocol.js";
import { sharedHeapFile } from "./shared-heap.js";
import { spawnWorker } from "./spawn.js";

/**
 * The coordinator: starts one worker thread per rank on a fresh fabric, relays progress, and collects
 * results. The first failure wins: a rank that throws, a rank that dies, or a collective that times out
 * sets the fabric's abort flag (every waiting rank gives up within one wait slice), then every worker
 * still running is terminated, and the run rejects only after every worker has exited.
 */
export interface LaunchSpec {
  readonly fabric: FabricSpec;
  /**
   * shareHeap: the rank sends its wasm heap once its backend is loaded, and receives every sharing rank's
   * once all have sent theirs (protocol.ts HeapExchange).
   */
  readonly ranks: readonly { readonly program: ProgramName; readonly payload: unknown; readonly shareHeap?: boolean }[];
  readonly timeoutSeconds: number;
  readonly onProgress?: (rank: number, step: number, phase: string, passes?: PassCount) => void;
  /** What workers print (tfjs banners and the like); dropped when absent. */
  readonly onOutput?: (rank: number, text: string) => void;
}

export type FailureKind = "threw" | "died" | "timeout";

export class ExecutionError extends Error {
  constructor(
    readonly rank: number,
    readonly kind: FailureKind,
    readonly operation: string,
    message: string,
  ) {
    super(message);
    this.name = "ExecutionError";
  }
}

/** How long workers get to leave on their own after an abort before they are terminated. */
const GRACE_MS = 500;

let live = 0;
/** Worker threads started by launch() and not yet exited (0 after every run, failed or not). */
export function liveWorkers(): number {
  return live;
}

export function describeStatus(fabric: FabricSpec, s: StatusReading): string {
  if (s.operation === "send" || s.operation === "recv") {
    const c = fabric.channels[s.target];
    return c === undefined ? s.operation : `${s.operation} (${c.kind} ${c.from}->${c.to})`;
  }
  if (["barrier", "all-reduce", "all-gather", "reduce-scatter", "all-to-all"].includes(s.operation)) {
    const g = fabric.groups[s.target];
    return g === undefined ? s.operation : `${s.operation} (${g.name})`;
  }
  return s.operation;
}

export function launch(spec: LaunchSpec): Promise<unknown[]> {
  const memory = allocateFabric(layoutFabric(spec.fabric));
  const control = new Int32Array(memory.buffer);
  const n = spec.ranks.length;
  const results: unknown[] = new Array<unknown>(n);
  const finished = new Array<boolean>(n).fill(false);
  const workers: Worker[] = [];
  let failure: ExecutionError | undefined;
  let exited = 0;
  const sharing = spec.ranks.flatMap((r, rank) => (r.shareHeap === true ? [rank] : []));
  const heaps: (WebAssembly.Memory | null)[] = new Array<WebAssembly.Memory | null>(n).fill(null);
  const posted = spec.ranks.map((r) => r.shareHeap !== true);
  const sharedBinary = sharing.length > 0 ? sharedHeapFile() : undefined;
  /** Every sharing rank offers its heap once; when all have, each gets every heap. */
  const offered = (rank: number, heap: WebAssembly.Memory | null) => {
    if (posted[rank]) return;
    posted[rank] = true;
    heaps[rank] = heap;
    if (posted.every(Boolean)) sharing.forEach((r) => void workers[r]!.postMessage({ type: "heaps", heaps } satisfies HeapsMessage));
  };

  return new Promise((resolve, reject) => {
    const where = (rank: number) => {
      const s = readStatus(control, rank);
      return { operation: describeStatus(spec.fabric, s), step: s.step };
    };
    const fail = (e: ExecutionError) => {
      if (failure !== undefined) return;
      failure = e;
      Atomics.store(control, CONTROL.abort, 1);
      setTimeout(() => workers.forEach((w) => void w.terminate()), GRACE_MS).unref();
    };
    const onMessage = (rank: number, m: FromWorker) => {
      if (m.type === "progress") spec.onProgress?.(rank, m.step, m.phase, m.passes);
      else if (m.type === "heap") offered(rank, m.heap);
      else if (m.type === "result") {
        // A sharing rank that finished without offering its heap (a probe with no tensor op) shares none.
        if (!posted[rank]) offered(rank, null);
        results[rank] = m.result;
        finished[rank] = true;
        void workers[rank]!.terminate();
      } else if (m.error.failure !== "aborted") {
        const at = where(rank);
        if (m.error.failure === "timeout") fail(new ExecutionError(rank, "timeout", at.operation, m.error.message));
        else fail(new ExecutionError(rank, "threw", at.operation, `rank ${rank} failed during ${at.operation} at step ${at.step}: ${m.error.message}`));
      }
    };
    const onExit = (rank: number, code: number) => {
      live--;
      exited++;
      if (!finished[rank]) {
        const at = where(rank);
        fail(new ExecutionError(rank, "died", at.operation, `rank ${rank} exited (code ${code}) during ${at.operation} at step ${at.step}`));
      }
      if (exited === n) {
        if (failure !== undefined) reject(failure);
        else resolve(results);
      }
    };
    spec.ranks.forEach((r, rank) => {
      const input: WorkerInput = { program: r.program, rank, memory, fabric: spec.fabric, timeoutSeconds: spec.timeoutSeconds, payload: r.payload, shareHeap: r.shareHeap === true, sharedBinary };
      const w = spawnWorker(input);
      live++;
      workers.push(w);
      const relay = (chunk: Buffer | string) => spec.onOutput?.(rank, chunk.toString());
      w.stdout.on("data", relay);
      w.stderr.on("data", relay);
      w.on("message", (m: FromWorker) => onMessage(rank, m));
      w.on("error", (e) => {
        const at = where(rank);
        fail(new ExecutionError(rank, "threw", at.operation, `rank ${rank} failed during ${at.operation} at step ${at.step}: ${e.message}`));
      });
      w.on("exit", (code) => onExit(rank, code));
    });
  });
}
