import { createRequire } from "node:module";
import type { Tf } from "../model/ops.js";
import { sharedHeapFile, SIMD_BINARY, WASM_BINARIES, wasmBinaryFolder, type SharedBinary } from "./shared-heap.js";

/**
 * The TensorFlow.js backend of a rank (design brief section 6): @tensorflow/tfjs-node-gpu, then
 * @tensorflow/tfjs-node, then the wasm backend, then the plain CPU backend. The native ones are loaded
 * only when installed (they download libtensorflow at install and cannot install everywhere) and never
 * required; node-gpu is tried only by a run of one rank, because its addon owns the GPU per process and
 * has failed when loaded in several worker threads. The wasm backend is the default everywhere.
 *
 * Ops come from @tensorflow/tfjs-core (the peer dependency the wasm backend registers into; importing it
 * alone starts a worker about 0.3 s faster than the whole @tensorflow/tfjs bundle).
 */
export type BackendChoice = "auto" | "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";

export interface LoadedBackend {
  readonly tf: Tf;
  /** tfjs's name of the active backend: "tensorflow", "wasm" or "cpu". */
  readonly backend: string;
  /** The package that provides it. */
  readonly packageName: string;
  /**
   * The wasm backend's heap, when it was asked to be shared and is (a SharedArrayBuffer that other ranks
   * can read: shared-heap.ts); otherwise undefined, with the reason in heapNote.
   */
  readonly heap?: WebAssembly.Memory;
  readonly heapNote?: string;
}

export interface BackendOptions {
  /** Load the wasm backend with a shared heap (shared-heap.ts), falling back to the plain one. */
  readonly sharedHeap?: boolean;
  /** The shared binary as the coordinator derived it for every rank (WorkerInput.sharedBinary); derived here when absent. */
  readonly sharedBinary?: SharedBinary | undefined;
}

interface Candidate {
  readonly choice: Exclude<BackendChoice, "auto">;
  readonly packageName: string;
  readonly backend: string;
  readonly native: boolean;
}

const CANDIDATES: readonly Candidate[] = [
  { choice: "tensorflow-gpu", packageName: "@tensorflow/tfjs-node-gpu", backend: "tensorflow", native: true },
  { choice: "tensorflow", packageName: "@tensorflow/tfjs-node", backend: "tensorflow", native: true },
  { choice: "wasm", packageName: "@tensorflow/tfjs-backend-wasm", backend: "wasm", native: false },
  { choice: "cpu", packageName: "@tensorflow/tfjs-backend-cpu", backend: "cpu", native: false },
];

async function importOptional(name: string): Promise<unknown> {
  // A variable specifier keeps TypeScript from requiring the optional packages' types.
  const specifier: string = name;
  return import(specifier);
}

async function core(): Promise<Tf> {
  try {
    return (await importOptional("@tensorflow/tfjs-core")) as Tf;
  } catch {
    return (await importOptional("@tensorflow/tfjs")) as Tf;
  }
}

interface WasmPackage {
  setWasmPaths(files: Record<string, string>): void;
}

/** Points tfjs-backend-wasm at a shared-memory copy of its SIMD binary; returns why not when it cannot. */
function shareWasmHeap(pkg: WasmPackage, binary: SharedBinary | undefined): string | undefined {
  try {
    const folder = wasmBinaryFolder();
    const shared = binary ?? sharedHeapFile(folder);
    if ("note" in shared) return shared.note;
    const files: Record<string, string> = Object.fromEntries(WASM_BINARIES.map((name) => [name, `${folder}/${name}`]));
    files[SIMD_BINARY] = shared.path;
    pkg.setWasmPaths(files);
    return undefined;
  } catch (e) {
    return `the wasm heap stays unshared: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** The wasm backend's memory (its Emscripten module's exported "memory"), when it is shared. */
function sharedHeapOf(tf: Tf): WebAssembly.Memory | undefined {
  const module = (tf.backend() as unknown as { wasm?: { asm?: { memory?: unknown } } }).wasm;
  const memory = module?.asm?.memory;
  return memory instanceof WebAssembly.Memory && memory.buffer instanceof SharedArrayBuffer ? memory : undefined;
}

async function tryLoad(c: Candidate, options: BackendOptions): Promise<LoadedBackend | undefined> {
  try {
    const tf = c.native ? ((await importOptional(c.packageName)) as Tf) : await core();
    let heapNote: string | undefined;
    if (!c.native) {
      const pkg = (await importOptional(c.packageName)) as WasmPackage;
      if (c.backend === "wasm" && options.sharedHeap === true) heapNote = shareWasmHeap(pkg, options.sharedBinary);
    }
    if (!(await tf.setBackend(c.backend))) return undefined;
    await tf.ready();
    const loaded = { tf, backend: tf.getBackend(), packageName: c.packageName };
    if (options.sharedHeap !== true) return loaded;
    if (c.backend !== "wasm") return { ...loaded, heapNote: `the ${loaded.backend} backend has no wasm heap to share` };
    const heap = sharedHeapOf(tf);
    if (heap !== undefined) return { ...loaded, heap };
    return { ...loaded, heapNote: heapNote ?? "the wasm heap stays unshared: the backend's memory is not a shared WebAssembly.Memory" };
  } catch {
    return undefined;
  }
}

/** The candidates a choice tries, in order; `ranks` > 1 skips tfjs-node-gpu. */
function candidatesFor(choice: BackendChoice, ranks: number): readonly Candidate[] {
  return choice === "auto" ? CANDIDATES.filter((c) => !(c.choice === "tensorflow-gpu" && ranks > 1)) : CANDIDATES.filter((c) => c.choice === choice);
}

/**
 * tfjs's name of the backend `choice` will load for `ranks` ranks (LoadedBackend.backend), as far as it can
 * be told before loading: under "auto", the first candidate whose package is installed.
 */
export function backendNameOf(choice: BackendChoice, ranks: number): string {
  const order = candidatesFor(choice, ranks);
  return (order.find((c) => missingBackendPackage(c.choice) === undefined) ?? order[order.length - 1]!).backend;
}

/** Loads the chosen backend, or under "auto" the first that loads; `ranks` > 1 skips tfjs-node-gpu. */
export async function loadBackend(choice: BackendChoice, ranks: number, options: BackendOptions = {}): Promise<LoadedBackend> {
  const order = candidatesFor(choice, ranks);
  for (const c of order) {
    const loaded = await tryLoad(c, options);
    if (loaded !== undefined) return loaded;
  }
  throw new Error(`no TensorFlow.js backend could be loaded (tried ${order.map((c) => c.packageName).join(", ")})`);
}

/**
 * The package a chosen native backend needs, when it is not installed here (undefined when it is, or when
 * the choice needs no native package): `execute` and `calibrate` refuse such a choice before any work.
 */
export function missingBackendPackage(choice: BackendChoice): string | undefined {
  const c = CANDIDATES.find((x) => x.choice === choice);
  if (c === undefined || !c.native) return undefined;
  try {
    createRequire(import.meta.url).resolve(c.packageName);
    return undefined;
  } catch {
    return c.packageName;
  }
}
