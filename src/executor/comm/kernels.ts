/**
 * Element-wise float32 reductions over the shared fabric memory, in WebAssembly SIMD (128-bit, four
 * lanes): a plain JavaScript loop over Float32Arrays runs at about 2.4 ns per element on the development
 * machine, the SIMD loop at about 0.2 ns (measured with 1 Mi elements; see bench/executor.bench.ts), and
 * the reduction is what bounds an all-reduce. The module imports a shared memory: the fabric, where every
 * rank's instance works on the same bytes, or a rank's own shared wasm heap (Group's heap forms).
 *
 * Copies within one memory go through the same module: `memory.copy` (bulk memory, core 2.0) is a memmove,
 * where TypedArray.set and copyWithin on a SharedArrayBuffer copy word by word with relaxed atomics (V8).
 * Measured on the development VM (Node 20, 2026-11-24, medians of 31): 4 MiB within a shared memory,
 * copyWithin 26.3-26.8 GB/s, memory.copy 44.4-45.3 GB/s (memcpy of unshared arrays: 42.9-45.4); at 64 MiB,
 * out of cache, all three 16-19 GB/s. But two ranks' in-place all-gathers of 8-64 MiB (blocks of 4 MiB and
 * more) ran 0-10% slower with memory.copy than with copyWithin (3 launches each, interleaved, 2026-11-24)
 * where 4 MiB ones (2 MiB blocks) ran 1.6-2.2x faster: copies of 4 MiB and more stay copyWithin
 * (WASM_COPY_MAX_BYTES). Across two memories there is no such instruction: multi-memory is not in Node 20's
 * V8 (11.3), so copies between ranks' wasm heaps stay TypedArray.set.
 *
 * Encoding per the WebAssembly core specification 2.0 (binary format, section 5) and the fixed-width SIMD
 * proposal's opcodes: v128.load 0xfd 0x00, v128.store 0xfd 0x0b, f32x4.add 0xfd 0xe4 0x01, f32x4.max 0xfd 0xe9 0x01;
 * memory.copy 0xfc 0x0a 0x00 0x00.
 */
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** One function type: (a, b, out, bytes: i32) -> (). */
const TYPES = [0x01, 0x08, 0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00];
/** Import "e" "m": a shared memory, min 1 page, max 65536 pages (flag 0x03: shared, has maximum). */
const IMPORTS = [0x02, 0x0b, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x03, 0x01, 0x80, 0x80, 0x04];
/** Three functions of type 0. */
const FUNCTIONS = [0x03, 0x04, 0x03, 0x00, 0x00, 0x00];
/** Exports "add" (function 0), "max" (function 1) and "copy" (function 2). */
const EXPORTS = [0x07, 0x14, 0x03, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x03, 0x6d, 0x61, 0x78, 0x00, 0x01, 0x04, 0x63, 0x6f, 0x70, 0x79, 0x00, 0x02];

/** for (i = 0; i < bytes; i += 16) out[i] = op(a[i], b[i]) with one i32 local. */
function body(op: number): number[] {
  const code = [
    0x01, 0x01, 0x7f, // one local i32 (index 4)
    0x02, 0x40, 0x03, 0x40, // block, loop
    0x20, 0x04, 0x20, 0x03, 0x4f, 0x0d, 0x01, // if i >= bytes: break
    0x20, 0x02, 0x20, 0x04, 0x6a, // out + i
    0x20, 0x00, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x04, 0x00, // v128.load a + i
    0x20, 0x01, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x04, 0x00, // v128.load b + i
    0xfd, op, 0x01, // f32x4.op
    0xfd, 0x0b, 0x04, 0x00, // v128.store
    0x20, 0x04, 0x41, 0x10, 0x6a, 0x21, 0x04, // i += 16
    0x0c, 0x00, 0x0b, 0x0b, 0x0b, // br loop, end loop, end block, end function
  ];
  return [code.length, ...code];
}

/** memory.copy(out, a, bytes): a memmove (the second argument unused). */
function copyBody(): number[] {
  const code = [0x00, 0x20, 0x02, 0x20, 0x00, 0x20, 0x03, 0xfc, 0x0a, 0x00, 0x00, 0x0b];
  return [code.length, ...code];
}

/** An unsigned LEB128 number (core specification 5.2.2): a section's size may pass 127 bytes. */
function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    const low = n & 0x7f;
    n >>>= 7;
    out.push(n === 0 ? low : low | 0x80);
  } while (n !== 0);
  return out;
}

function moduleBytes(): Uint8Array {
  const add = body(0xe4);
  const max = body(0xe9);
  const code = [0x03, ...add, ...max, ...copyBody()];
  return new Uint8Array([...HEADER, ...TYPES, ...IMPORTS, ...FUNCTIONS, ...EXPORTS, 0x0a, ...leb128(code.length), ...code]);
}

/** Copies shorter than this go through memory.copy, longer ones copyWithin (see the header). */
const WASM_COPY_MAX_BYTES = 4 * 2 ** 20;

let compiled: WebAssembly.Module | undefined;

export interface Kernels {
  /** out[i] = a[i] + b[i] for `count` floats at the given byte offsets of the fabric memory. */
  add(aByte: number, bByte: number, outByte: number, count: number): void;
  max(aByte: number, bByte: number, outByte: number, count: number): void;
  /** `count` floats from srcByte to outByte of the same memory; the ranges may overlap (a memmove). */
  copy(srcByte: number, outByte: number, count: number): void;
}

export function kernels(memory: WebAssembly.Memory): Kernels {
  compiled ??= new WebAssembly.Module(moduleBytes() as BufferSource);
  const exports = new WebAssembly.Instance(compiled, { e: { m: memory } }).exports as unknown as {
    add(a: number, b: number, out: number, bytes: number): void;
    max(a: number, b: number, out: number, bytes: number): void;
    copy(a: number, b: number, out: number, bytes: number): void;
  };
  const run = (simd: typeof exports.add, scalar: (x: number, y: number) => number) =>
    (a: number, b: number, out: number, count: number) => {
      const vector = count & ~3;
      if (vector > 0) simd(a, b, out, vector * 4);
      if (vector === count) return;
      // A fresh view: the memory may have grown since the last call (a rank's wasm heap does).
      const floats = new Float32Array(memory.buffer);
      for (let i = vector; i < count; i++) floats[out / 4 + i] = scalar(floats[a / 4 + i]!, floats[b / 4 + i]!);
    };
  return {
    add: run(exports.add, (x, y) => x + y),
    max: run(exports.max, (x, y) => Math.max(x, y)),
    copy: (src, out, count) => {
      // copyWithin would clamp a range past the end; both forms refuse it alike
      const size = memory.buffer.byteLength;
      if (src < 0 || out < 0 || count < 0 || src + 4 * count > size || out + 4 * count > size) {
        throw new RangeError(`internal: a copy of ${count} floats from byte ${src} to byte ${out} passes the end of a ${size}-byte memory`);
      }
      if (4 * count < WASM_COPY_MAX_BYTES) exports.copy(src, 0, out, 4 * count);
      else new Float32Array(memory.buffer).copyWithin(out / 4, src / 4, src / 4 + count);
    },
  };
}
