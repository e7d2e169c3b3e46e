import type { FabricSpec } from "../comm/fabric.js";

/** What the coordinator hands a worker thread, and what the worker sends back. */
export type ProgramName = "rank" | "server" | "probe" | "matmul";

export interface WorkerInput<P = unknown> {
  readonly program: ProgramName;
  readonly rank: number;
  readonly memory: WebAssembly.Memory;
  readonly fabric: FabricSpec;
  readonly timeoutSeconds: number;
  readonly payload: P;
}

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  /** For communication errors: "timeout" or "aborted". */
  readonly failure?: string;
  readonly stack?: string;
}

export type FromWorker =
  | { readonly type: "progress"; readonly rank: number; readonly step: number; readonly phase: string }
  | { readonly type: "result"; readonly rank: number; readonly result: unknown }
  | { readonly type: "error"; readonly rank: number; readonly error: SerializedError };

/** A program a worker runs: gets its input and a way to report progress, returns its result. */
export type Program = (input: WorkerInput, progress: (step: number, phase: string) => void) => Promise<unknown>;

/** Deliberate failures, for testing the fault handling. */
export interface FaultSpec {
  readonly rank: number;
  /** Step (0-based) at which the fault strikes, just before the named phase. */
  readonly step: number;
  readonly phase: "forward" | "backward" | "optimizer";
  /** throw an error; exit the thread (as if killed); hang (stop taking part, so peers time out). */
  readonly kind: "throw" | "exit" | "hang";
}
