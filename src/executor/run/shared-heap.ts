import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/**
 * A rank's wasm heap that the other ranks can read (src/executor/README.md, Speed): tfjs-backend-wasm's
 * binaries define their own linear memory, unshared, so a tensor's values can reach another worker only
 * through a copy into shared memory. Setting the memory's "shared" limits flag makes the heap a
 * SharedArrayBuffer, and its WebAssembly.Memory can be posted to the other ranks, whose collectives then
 * read tensors where TensorFlow.js put them. The module's code is unchanged: a non-threaded build never
 * uses atomics, and a shared memory behaves like an unshared one to a single thread; what changes is that
 * it cannot be detached, so growing it leaves earlier JavaScript views valid but short.
 *
 * Binary format: WebAssembly core specification 2.0, section 5.5 (sections: id byte, u32 LEB128 size,
 * contents; the memory section is id 5, a vector of limits) and the threads proposal's limits flags
 * (0x00 min, 0x01 min and max, 0x03 shared with min and max: a shared memory must declare a maximum).
 */
const MEMORY_SECTION = 5;
const LIMITS_MIN_MAX = 0x01;
const LIMITS_SHARED_MIN_MAX = 0x03;
const MAGIC = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

function readU32(bytes: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (let p = at; p < bytes.length && shift < 35; p++, shift += 7) {
    const b = bytes[p]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return { value, next: p + 1 };
  }
  throw new Error(`malformed LEB128 integer at byte ${at}`);
}

/**
 * A copy of a WebAssembly module whose one defined memory is made shared. Throws, naming what it found,
 * unless the module has exactly one memory section holding one memory with a maximum and not yet shared
 * (the form of tfjs-backend-wasm 4.x's non-threaded binaries).
 */
export function shareDefinedMemory(module: Uint8Array): Uint8Array {
  if (module.length < 8 || MAGIC.some((b, i) => module[i] !== b)) throw new Error("not a WebAssembly version 1 module");
  let flagAt: number | undefined;
  let p = 8;
  while (p < module.length) {
    const id = module[p]!;
    const size = readU32(module, p + 1);
    const start = size.next;
    const end = start + size.value;
    if (end > module.length) throw new Error(`section ${id} at byte ${p} runs past the end of the module`);
    if (id === MEMORY_SECTION) {
      if (flagAt !== undefined) throw new Error("more than one memory section");
      const count = readU32(module, start);
      if (count.value !== 1) throw new Error(`the memory section defines ${count.value} memories, not 1`);
      const flag = module[count.next];
      if (flag !== LIMITS_MIN_MAX) throw new Error(`the memory's limits flag is ${flag}, not ${LIMITS_MIN_MAX} (unshared, with a maximum)`);
      flagAt = count.next;
    }
    p = end;
  }
  if (flagAt === undefined) throw new Error("no memory section (the memory is imported or absent)");
  const out = module.slice();
  out[flagAt] = LIMITS_SHARED_MIN_MAX;
  return out;
}

/** The binary tfjs-backend-wasm loads where WebAssembly SIMD works and threads do not (Node.js). */
export const SIMD_BINARY = "tfjs-backend-wasm-simd.wasm";
export const WASM_BINARIES = ["tfjs-backend-wasm.wasm", SIMD_BINARY, "tfjs-backend-wasm-threaded-simd.wasm"] as const;

/** The folder holding the installed tfjs-backend-wasm binaries. */
export function wasmBinaryFolder(): string {
  return dirname(createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm"));
}

/**
 * This user's folder under the system's temporary folder, made private (mode 700) and checked to be
 * this user's and writable by nobody else: the patched binary written there is code that will run.
 */
function privateFolder(): string {
  const uid = process.getuid?.();
  const folder = join(tmpdir(), `meshplan-${uid ?? "user"}`);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const st = lstatSync(folder);
  if (!st.isDirectory() || (uid !== undefined && (st.uid !== uid || (st.mode & 0o022) !== 0))) {
    throw new Error(`${folder} is not a directory of this user's that only this user can write`);
  }
  return folder;
}

/**
 * The path of a shared-memory copy of the installed SIMD binary, written once into this user's private
 * temporary folder under a name made from its contents (a whole file or none: written beside, then
 * renamed; a file there with other bytes is replaced), or into `into` (tests). Throws when the binary is
 * not of the expected form.
 */
export function sharedHeapBinary(folder = wasmBinaryFolder(), into?: string): string {
  const patched = Buffer.from(shareDefinedMemory(readFileSync(join(folder, SIMD_BINARY))));
  if (!WebAssembly.validate(patched)) throw new Error("the patched binary does not validate");
  const digest = createHash("sha256").update(patched).digest("hex").slice(0, 16);
  const path = join(into ?? privateFolder(), `meshplan-shared-heap-${digest}.wasm`);
  if (!existsSync(path) || !patched.equals(readFileSync(path))) {
    const partial = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.part`;
    writeFileSync(partial, patched);
    renameSync(partial, path);
  }
  return path;
}

/** The shared-memory SIMD binary's path, or why there is none (the report's note). */
export type SharedBinary = { readonly path: string } | { readonly note: string };

/**
 * sharedHeapBinary as a result: the coordinator derives it once for all its ranks (read, patch, validate,
 * hash and compare the cached file: 10-20 ms each, once per rank before) and hands it to them.
 */
export function sharedHeapFile(folder?: string): SharedBinary {
  try {
    return { path: sharedHeapBinary(folder) };
  } catch (e) {
    return { note: `the wasm heap stays unshared: ${e instanceof Error ? e.message : String(e)}` };
  }
}
