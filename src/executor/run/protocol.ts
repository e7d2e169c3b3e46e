import type { FabricSpec } from "../comm/fabric.js";
import type { SharedBinary } from "./shared-heap.js";

/** What the coordinator hands a worker thread, and what the worker sends back. */
export type ProgramName = "rank" | "server" | "probe" | "matmul";

export interface WorkerInput<P = unknown> {
  readonly program: ProgramName;
  readonly rank: number;
  readonly memory: WebAssembly.Memory;
  readonly fabric: FabricSpec;
  readonly timeoutSeconds: number;
  readonly payload: P;
  /** This rank offers its wasm heap to the others and receives theirs (HeapExchange); see LaunchSpec. */
  readonly shareHeap?: boolean;
  /** With shareHeap: the shared-memory wasm binary the coordinator derived once for every rank (shared-heap.ts). */
  readonly sharedBinary?: SharedBinary | undefined;
}

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  /** For communication errors: "timeout" or "aborted". */
  readonly failure?: string;
  readonly stack?: string;
}

export type FromWorker =
  | { readonly type: "progress"; readonly rank: number; readonly step: number; readonly phase: string; readonly passes?: PassCount }
  | { readonly type: "result"; readonly rank: number; readonly result: unknown }
  | { readonly type: "error"; readonly rank: number; readonly error: SerializedError }
  /** This rank's shared wasm heap (null: it has none), once its backend is loaded. */
  | { readonly type: "heap"; readonly rank: number; readonly heap: WebAssembly.Memory | null };

/** The coordinator's answer once every sharing rank has sent its heap: the heaps by global rank. */
export interface HeapsMessage {
  readonly type: "heaps";
  readonly heaps: readonly (WebAssembly.Memory | null)[];
}

/**
 * Offers this rank's shared heap (undefined: none) and resolves to every rank's, by global rank (null
 * for a rank that has none or does not share). A rank whose input says shareHeap must call it once.
 */
export type HeapExchange = (own: WebAssembly.Memory | undefined) => Promise<readonly (WebAssembly.Memory | null)[]>;

/** Passes of one step a rank has begun, of all it runs in that step (a progress report inside a long step). */
export interface PassCount {
  readonly done: number;
  readonly of: number;
}

/** How a program reports progress: a step or phase reached, with the passes begun where it reports them. */
export type Progress = (step: number, phase: string, passes?: PassCount) => void;

/** A program a worker runs: gets its input and a way to report progress, returns its result. */
export type Program = (input: WorkerInput, progress: Progress, exchangeHeaps: HeapExchange) => Promise<unknown>;

/** Deliberate failures, for testing the fault handling. */
export interface FaultSpec {
  readonly rank: number;
  /** Step (0-based) at which the fault strikes, just before the named phase. */
  readonly step: number;
  readonly phase: "forward" | "backward" | "optimizer";
  /** throw an error; exit the thread (as if killed); hang (stop taking part, so peers time out). */
  readonly kind: "throw" | "exit" | "hang";
}
