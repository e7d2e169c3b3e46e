import { describe, expect, it } from "vitest";
import { kernels } from "../../src/executor/comm/kernels.js";

/** A shared memory of `pages` 64 KiB pages, filled with distinct values (float i at i is i * 0.5 - 3). */
function memory(pages = 1): { mem: WebAssembly.Memory; floats: Float32Array } {
  const mem = new WebAssembly.Memory({ initial: pages, maximum: 256, shared: true });
  const floats = new Float32Array(mem.buffer);
  for (let i = 0; i < floats.length; i++) floats[i] = i * 0.5 - 3;
  return { mem, floats };
}

describe("shared-memory kernels", () => {
  it("adds and maxes element by element, the tail past the last four lanes included", () => {
    for (const count of [1, 3, 4, 7, 1000, 1003]) {
      const { mem, floats } = memory();
      const k = kernels(mem);
      const a = 0, b = 2000, out = 6000;
      const expectedSum = Array.from({ length: count }, (_, i) => floats[a + i]! + floats[b + i]!);
      k.add(4 * a, 4 * b, 4 * out, count);
      expect(Array.from(floats.subarray(out, out + count))).toEqual(expectedSum);
      expect(floats[out + count]).toBe((out + count) * 0.5 - 3); // nothing past the end
      floats[b + 1] = 1e6;
      k.max(4 * a, 4 * b, 4 * out, count);
      expect(Array.from(floats.subarray(out, out + count))).toEqual(Array.from({ length: count }, (_, i) => Math.max(floats[a + i]!, floats[b + i]!)));
    }
  });

  it("copies within the memory as a memmove: disjoint, and overlapping in either direction, short copies and long ones", () => {
    // long: 4 MiB and more take the other path (kernels.ts WASM_COPY_MAX_BYTES)
    const MI = 2 ** 20;
    const cases = [[0, 5000, 1001], [100, 140, 1000], [140, 100, 1000], [7, 7, 5], [3, 2 * MI + 5, MI + 3], [10, 50, MI + 1], [50, 10, MI + 1]] as const;
    for (const [src, out, count] of cases) {
      const { mem, floats } = memory(Math.ceil((4 * (Math.max(src, out) + count)) / 65536));
      const expected = floats.slice();
      expected.set(floats.slice(src, src + count), out);
      kernels(mem).copy(4 * src, 4 * out, count);
      // compared element by element: toEqual on millions of floats takes seconds
      let wrong = 0;
      for (let i = 0; i < floats.length; i++) if (floats[i] !== expected[i]) wrong++;
      expect(wrong).toBe(0);
    }
  });

  it("copies in a memory that grew after the kernels were made, and refuses a range past its end", () => {
    const { mem } = memory();
    const k = kernels(mem);
    mem.grow(1);
    const floats = new Float32Array(mem.buffer);
    floats.fill(9, 16384, 16384 + 10);
    k.copy(4 * 16384, 4 * 20000, 10);
    expect(Array.from(floats.subarray(20000, 20010))).toEqual(Array(10).fill(9));
    expect(() => k.copy(0, 4 * (32768 - 5), 10)).toThrow(/passes the end of a 131072-byte memory/);
    expect(() => k.copy(4 * (32768 - 5), 0, 2 ** 20)).toThrow(/passes the end/);
  });
});
