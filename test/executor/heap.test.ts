import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import type { FabricSpec } from "../../src/executor/comm/fabric.js";
import { probeInput, seededInput, type ProbeOp, type ProbeResult } from "../../src/executor/run/probe.js";
import { ExecutionError, launch, liveWorkers } from "../../src/executor/run/launch.js";
import { shareDefinedMemory, sharedHeapBinary, sharedHeapFile, SIMD_BINARY, wasmBinaryFolder } from "../../src/executor/run/shared-heap.js";

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** A module of one memory section: one memory with the given limits bytes. */
const withMemory = (...limits: number[]) => new Uint8Array([...HEADER, 0x05, 1 + limits.length, 0x01, ...limits]);

describe("the shared-heap binary (shared-heap.ts)", () => {
  it("flips only the installed SIMD binary's memory limits flag, from 1 (unshared) to 3 (shared), and the result validates", () => {
    const original = new Uint8Array(readFileSync(join(wasmBinaryFolder(), SIMD_BINARY)));
    const patched = shareDefinedMemory(original);
    const changed = [...patched.keys()].filter((i) => patched[i] !== original[i]);
    expect(changed).toHaveLength(1);
    expect([original[changed[0]!], patched[changed[0]!]]).toEqual([1, 3]);
    expect(WebAssembly.validate(patched as BufferSource)).toBe(true);
    // The smallest module of the same form: its memory, once instantiated, is a SharedArrayBuffer.
    const small = shareDefinedMemory(new Uint8Array([...withMemory(0x01, 1, 2), 0x07, 0x05, 0x01, 0x01, 0x6d, 0x02, 0x00]));
    const memory = new WebAssembly.Instance(new WebAssembly.Module(small as BufferSource)).exports.m as WebAssembly.Memory;
    expect(memory.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("refuses modules of another form, naming what it found", () => {
    expect(() => shareDefinedMemory(new Uint8Array([1, 2, 3]))).toThrow(/not a WebAssembly version 1 module/);
    expect(() => shareDefinedMemory(new Uint8Array(HEADER))).toThrow(/no memory section/);
    expect(() => shareDefinedMemory(withMemory(0x00, 1))).toThrow(/limits flag is 0/);
    expect(() => shareDefinedMemory(withMemory(0x03, 1, 2))).toThrow(/limits flag is 3/);
    expect(() => shareDefinedMemory(new Uint8Array([...HEADER, 0x05, 0x05, 0x02, 0x01, 1, 2, 0x00]))).toThrow(/defines 2 memories/);
    expect(() => shareDefinedMemory(new Uint8Array([...HEADER, 0x05, 0x09, 0x01]))).toThrow(/runs past the end/);
  });

  it("writes the patched copy under a name made from its contents, in a folder only this user can write, and replaces other bytes found there", () => {
    const expected = Buffer.from(shareDefinedMemory(new Uint8Array(readFileSync(join(wasmBinaryFolder(), SIMD_BINARY)))));
    const shared = sharedHeapBinary();
    expect(shared).toMatch(/meshplan-shared-heap-[0-9a-f]{16}\.wasm$/);
    expect(readFileSync(shared).equals(expected)).toBe(true);
    if (process.getuid !== undefined) expect(statSync(dirname(shared)).mode & 0o077).toBe(0);
    // Elsewhere than the folder the ranks of other test files load from at the same time.
    const into = mkdtempSync(join(tmpdir(), "meshplan-heap-test-"));
    try {
      const path = sharedHeapBinary(wasmBinaryFolder(), into);
      writeFileSync(path, "not the binary");
      expect(sharedHeapBinary(wasmBinaryFolder(), into)).toBe(path);
      expect(readFileSync(path).equals(expected)).toBe(true);
    } finally {
      rmSync(into, { recursive: true, force: true });
    }
  });

  it("as the coordinator derives it once for its ranks: the path, or the reason there is none", () => {
    expect(sharedHeapFile()).toEqual({ path: sharedHeapBinary() });
    const empty = mkdtempSync(join(tmpdir(), "meshplan-heap-test-"));
    try {
      expect(sharedHeapFile(empty)).toEqual({ note: expect.stringMatching(/^the wasm heap stays unshared: .*no such file/) });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

const fabric: FabricSpec = {
  ranks: 3,
  groups: [{ name: "all", kind: "tp", members: [0, 1, 2], capacityFloats: 2048 }, { name: "pair", kind: "cp", members: [0, 1], capacityFloats: 2048 }],
  channels: [],
};

function run(payloads: object[], timeoutSeconds = 20, on: FabricSpec = fabric): Promise<ProbeResult[]> {
  return launch({ fabric: on, timeoutSeconds, ranks: payloads.map((payload) => ({ program: "probe", payload, shareHeap: true })) }) as Promise<ProbeResult[]>;
}

describe("the heap forms of the tensor collectives (Group.*Heap through run/tensor-group.ts)", () => {
  // 1026 floats over 3 ranks: blocks of 342, not a multiple of 4 (the SIMD kernel's scalar tail); the
  // all-reduce of 1027 has uneven blocks (342, 342, 343).
  const n = 1026;
  const script: ProbeOp[] = [
    { op: "all-reduce-tensor", group: "all", n },
    { op: "all-reduce-max-tensor", group: "all", n },
    { op: "reduce-scatter-tensor", group: "all", n },
    { op: "all-gather-tensor", group: "all", n },
    { op: "all-reduce-tensor", group: "all", n: n + 1 },
    // A ZeRO weight gather into 4 tensors of 258 floats: the members' blocks of 344 straddle them.
    { op: "all-gather-params-tensor", group: "all", n: 1032 },
    // Expert parallel's all-to-all: block k of each member's input to member k, pulled whatever its size.
    { op: "all-to-all-tensor", group: "all", n },
  ];
  const inputs = [0, 1, 2].map((r) => probeInput(r, n));
  const block = (r: number) => ({ first: (r * n) / 3, end: ((r + 1) * n) / 3 });

  // Small blocks are pulled from the other members' heaps, large ones pushed into them (Group.pushes):
  // every test runs both forms, the push by lowering its threshold to one float.
  // `pushes`: how many of the script's collectives push (all but the reduce-scatter and the all-to-all).
  for (const [name, form, pushes] of [["blocks pulled", {}, 0], ["blocks pushed", { pushMinFloats: 1 }, 1]] as const) {
    it(`read the other ranks' tensors in their heaps and give what the collectives should (${name})`, async () => {
      // 32 MiB kept by every rank after the heaps are exchanged: the inputs then lie beyond the heap's first size.
      const heap = await run([0, 1, 2].map(() => ({ script, heap: true, growBytes: 32 * 2 ** 20, ...form })));
      expect(heap.map((r) => r.heapForms)).toEqual([["all"], ["all"], ["all"]]);
      expect(heap.map((r) => r.pushed)).toEqual([5, 5, 5].map((c) => c * pushes));
      // Exact sums: the inputs are multiples of 1/1024 below 5.
      const sum = Array.from({ length: n }, (_, i) => inputs[0]![i]! + inputs[1]![i]! + inputs[2]![i]!);
      const max = Array.from(inputs[2]!);
      const longer = [0, 1, 2].map((r) => probeInput(r, n + 1));
      for (let r = 0; r < 3; r++) {
        const [allReduce, allMax, scatter, gather, uneven, params, toAll] = heap[r]!.outputs;
        expect(toAll).toEqual([0, 1, 2].flatMap((k) => Array.from(inputs[k]!.subarray(block(r).first, block(r).end))));
        expect(params).toEqual([0, 1, 2].flatMap((k) => Array.from(probeInput(k, 1032).subarray(344 * k, 344 * (k + 1)))));
        expect(allReduce).toEqual(sum);
        expect(allMax).toEqual(max);
        expect(scatter).toEqual(sum.slice(block(r).first, block(r).end));
        expect(gather).toEqual([0, 1, 2].flatMap((k) => Array.from(inputs[k]!.subarray(block(k).first, block(k).end))));
        expect(uneven).toEqual(Array.from({ length: n + 1 }, (_, i) => longer[0]![i]! + longer[1]![i]! + longer[2]![i]!));
      }
    });

    it(`sum in the slot forms' order, to the bit, and count their bytes, with every heap growing before each collective (${name})`, async () => {
      // Inputs whose float32 sums depend on the order of the terms; 4 MiB more kept before every run.
      const heap = await run([0, 1, 2].map(() => ({ script, repeat: 3, heap: true, seeded: true, growBytesPerOp: 4 * 2 ** 20, ...form })));
      const slots = await run([0, 1, 2].map(() => ({ script, heap: false, seeded: true })));
      expect(heap.map((r) => r.heapForms)).toEqual([["all"], ["all"], ["all"]]);
      expect(slots.map((r) => r.heapForms)).toEqual([[], [], []]);
      expect(heap.map((r) => r.pushed)).toEqual([15, 15, 15].map((c) => c * pushes));
      const x = [0, 1, 2].map((r) => seededInput(r, n));
      // Block j is summed by member j: its own term first, then the others' in member order.
      const f = Math.fround;
      const slotOrder = (i: number) => {
        const j = [0, 1, 2].findIndex((k) => i < block(k).end);
        const rest = [0, 1, 2].filter((k) => k !== j);
        return f(f(x[j]![i]! + x[rest[0]!]![i]!) + x[rest[1]!]![i]!);
      };
      // With these inputs another order gives other bits: (x0 + x2) + x1 in place of (x0 + x1) + x2.
      expect(Array.from({ length: n }, (_, i) => f(f(x[0]![i]! + x[2]![i]!) + x[1]![i]!) !== slotOrder(i)).some(Boolean)).toBe(true);
      for (let r = 0; r < 3; r++) expect(heap[r]!.outputs[0]).toEqual(Array.from({ length: n }, (_, i) => slotOrder(i)));
      const counted = (t: ProbeResult["traffic"]) => ({ bytes: t.byKind.tp.bytes, calls: t.byKind.tp.calls, byPurpose: t.byPurpose });
      for (let r = 0; r < 3; r++) {
        expect(heap[r]!.outputs).toEqual(slots[r]!.outputs);
        expect(counted(heap[r]!.traffic)).toEqual({ ...counted(slots[r]!.traffic), calls: 3 * counted(slots[r]!.traffic).calls, bytes: 3 * counted(slots[r]!.traffic).bytes, byPurpose: { probe: 3 * slots[r]!.traffic.byPurpose.probe! } });
      }
    });

    it(`give the slot forms' bits when a block spans several staging chunks (${name}, chunk by chunk)`, async () => {
      // Blocks of 70001 floats: two full chunks of the 32768-float staging buffer and a partial one, whose
      // length is not a multiple of 4; the all-reduce of one float more has uneven blocks.
      const big = 3 * 70001;
      const long: ProbeOp[] = [
        { op: "all-reduce-tensor", group: "all", n: big + 1 },
        { op: "reduce-scatter-tensor", group: "all", n: big },
        { op: "all-gather-tensor", group: "all", n: big },
        // A ZeRO gather of blocks of 80000 floats (three chunks) into 4 tensors of 60000 that they straddle.
        { op: "all-gather-params-tensor", group: "all", n: 240000 },
      ];
      const wide: FabricSpec = { ...fabric, groups: [{ ...fabric.groups[0]!, capacityFloats: 240000 }] };
      const heap = await run([0, 1, 2].map(() => ({ script: long, heap: true, seeded: true, ...form })), 60, wide);
      const slots = await run([0, 1, 2].map(() => ({ script: long, heap: false, seeded: true })), 60, wide);
      expect(heap.map((r) => r.heapForms)).toEqual([["all"], ["all"], ["all"]]);
      expect(slots.map((r) => r.heapForms)).toEqual([[], [], []]);
      expect(heap.map((r) => r.pushed)).toEqual([3, 3, 3].map((c) => c * pushes));
      const x = [0, 1, 2].map((r) => seededInput(r, big));
      const params = [0, 1, 2].flatMap((k) => Array.from(seededInput(k, 240000).subarray(80000 * k, 80000 * (k + 1))));
      for (let r = 0; r < 3; r++) {
        // The first element that differs (-1: none), which fails fast where a diff of 210k elements does not.
        const gathered = [0, 1, 2].flatMap((k) => Array.from(x[k]!.subarray(70001 * k, 70001 * (k + 1))));
        const expected = [...slots[r]!.outputs.slice(0, 2), gathered, params];
        const differs = (a: readonly number[], b: readonly number[]) => a.findIndex((v, j) => !Object.is(v, b[j]));
        expect(heap[r]!.outputs.map((o) => o?.length)).toEqual([big + 1, 70001, big, 240000]);
        expect(expected.map((e, i) => differs(e!, heap[r]!.outputs[i]!))).toEqual([-1, -1, -1, -1]);
        expect([differs(slots[r]!.outputs[2]!, gathered), differs(slots[r]!.outputs[3]!, params)]).toEqual([-1, -1]);
      }
    });
  }

  it("push between two members too, and end the run, not hang, when the members would choose different forms", async () => {
    const pair: ProbeOp[] = [{ op: "all-reduce-tensor", group: "pair", n: 70001 }, { op: "all-gather-tensor", group: "pair", n: 70002 }];
    const done = await run([{ script: pair, heap: true, seeded: true, pushMinFloats: 1 }, { script: pair, heap: true, seeded: true, pushMinFloats: 1 }, { script: [] }]);
    expect(done.map((r) => r.pushed)).toEqual([2, 2, 0]);
    const x = [0, 1].map((r) => seededInput(r, 70001));
    const g = [0, 1].map((r) => seededInput(r, 70002));
    const f = Math.fround;
    // Block j (35001 and 35000 floats) summed by member j, its own term first.
    const sum = Array.from({ length: 70001 }, (_, i) => (i < 35001 ? f(x[0]![i]! + x[1]![i]!) : f(x[1]![i]! + x[0]![i]!)));
    const gathered = [...g[0]!.subarray(0, 35001), ...g[1]!.subarray(35001)];
    for (const r of [0, 1]) {
      expect(done[r]!.outputs[0]!.findIndex((v, j) => !Object.is(v, sum[j]))).toBe(-1);
      expect(done[r]!.outputs[1]!.findIndex((v, j) => !Object.is(v, gathered[j]))).toBe(-1);
    }
    const mixed = await run([{ script: pair, heap: true, pushMinFloats: 1 }, { script: pair, heap: true }, { script: [] }], 5).catch((e: unknown) => e);
    expect(mixed).toBeInstanceOf(ExecutionError);
    expect((mixed as ExecutionError).message).toMatch(/all-reduce.*chose the forms (pushed, pulled|pulled, pushed)/);
    expect(liveWorkers()).toBe(0);
  });

  it("fall back to the slot forms in every member when one rank's heap is not shared", async () => {
    const res = await run([{ script, heap: true }, { script, heap: false }, { script, heap: true }]);
    expect(res.map((r) => r.heapForms)).toEqual([[], [], []]);
    const sum = Array.from({ length: n }, (_, i) => inputs[0]![i]! + inputs[1]![i]! + inputs[2]![i]!);
    for (let r = 0; r < 3; r++) {
      expect(res[r]!.outputs[0]).toEqual(sum);
      expect(res[r]!.outputs[3]).toEqual([0, 1, 2].flatMap((k) => Array.from(inputs[k]!.subarray(block(k).first, block(k).end))));
    }
  });

  it("the exchange completes when a sharing rank finishes without offering its heap, and times out, naming itself, when one never does", async () => {
    const pair: ProbeOp[] = [{ op: "all-reduce-tensor", group: "pair", n: 8 }];
    const done = await run([{ script: pair, heap: true }, { script: pair, heap: true }, { script: [] }]);
    expect(done.map((r) => r.heapForms)).toEqual([["pair"], ["pair"], []]);
    const failure = await run([{ script: pair, heap: true }, { script: pair, heap: true }, { script: [{ op: "hang" }] }], 1).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ExecutionError);
    expect((failure as ExecutionError).kind).toBe("timeout");
    expect((failure as ExecutionError).message).toMatch(/^rank [01]: heap exchange timed out after 1 s/);
    expect(liveWorkers()).toBe(0);
  });

  it("a rank that never joins a heap collective ends the run with a timeout naming it and the operation, no worker left", async () => {
    // Rank 2 meets the others at the barrier the probe puts before each timed tensor op, then stops.
    const hang: ProbeOp[] = [{ op: "all-reduce-tensor", group: "all", n: 8 }, { op: "barrier", group: "all" }, { op: "hang" }];
    const stuck: ProbeOp[] = [{ op: "all-reduce-tensor", group: "all", n: 8 }, { op: "all-reduce-tensor", group: "all", n: 8 }];
    const failure = await run([{ script: stuck, heap: true }, { script: stuck, heap: true }, { script: hang, heap: true }], 1).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ExecutionError);
    expect((failure as ExecutionError).kind).toBe("timeout");
    expect((failure as ExecutionError).message).toMatch(/all-reduce \(all, call 2\).*rank 2/);
    expect(liveWorkers()).toBe(0);
  });
});
