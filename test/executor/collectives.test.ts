import { describe, expect, it } from "vitest";
import type { FabricSpec } from "../../src/executor/comm/fabric.js";
import { probeInput, type ProbeOp, type ProbeResult } from "../../src/executor/run/probe.js";
import { ExecutionError, launch, liveWorkers } from "../../src/executor/run/launch.js";

const fabric: FabricSpec = {
  ranks: 4,
  groups: [
    { name: "all", kind: "dp", members: [0, 1, 2, 3], capacityFloats: 4096, bucketFloats: 4096 },
    { name: "even", kind: "tp", members: [0, 2], capacityFloats: 4096 },
    { name: "odd", kind: "tp", members: [1, 3], capacityFloats: 4096 },
  ],
  channels: [
    { from: 0, to: 1, kind: "pp", slots: 2, capacityFloats: 1024 },
    { from: 1, to: 0, kind: "pp", slots: 2, capacityFloats: 1024 },
  ],
};

function run(scripts: ProbeOp[][], timeoutSeconds = 10): Promise<ProbeResult[]> {
  return launch({ fabric, timeoutSeconds, ranks: scripts.map((script) => ({ program: "probe", payload: { script } })) }) as Promise<ProbeResult[]>;
}

const sum = (n: number, ranks: number[]) => Array.from({ length: n }, (_, i) => ranks.reduce((a, r) => a + Math.fround(probeInput(r, n)[i]!), 0));

describe("shared-memory collectives", () => {
  it("all-reduce, reduce-scatter, all-gather and all-to-all give the right values and count bytes", async () => {
    const n = 1030; // not a multiple of 4 ranks: uneven blocks and a SIMD tail
    const script: ProbeOp[] = [
      { op: "all-reduce", group: "all", n },
      { op: "reduce-scatter", group: "all", n },
      { op: "all-gather", group: "all", n },
      { op: "all-to-all", group: "all", n: 1024 },
      { op: "all-reduce-max", group: "all", n: 8 },
      { op: "all-reduce", group: "all", n },
      { op: "all-reduce-slot", group: "all", n },
      { op: "all-gather-slot", group: "all", n },
    ];
    const res = await run([script, script, script, script]);
    const total = sum(n, [0, 1, 2, 3]);
    for (let r = 0; r < 4; r++) {
      const o = res[r]!.outputs;
      expect(o[0]).toEqual(total.map((v) => Math.fround(v)));
      const first = Math.floor((r * n) / 4);
      const end = Math.floor(((r + 1) * n) / 4);
      expect(o[1]).toEqual(total.slice(first, end).map((v) => Math.fround(v)));
      const owner = (i: number) => [0, 1, 2, 3].findIndex((k) => i < Math.floor(((k + 1) * n) / 4));
      expect(o[2]).toEqual(Array.from({ length: n }, (_, i) => probeInput(owner(i), n)[i]!));
      expect(o[3]!.slice(0, 256)).toEqual(Array.from(probeInput(0, 1024).subarray(r * 256, r * 256 + 256)));
      expect(o[4]).toEqual(Array.from(probeInput(3, 8)));
      expect(o[5]).toEqual(o[0]);
      expect(o[6]).toEqual(o[0]);
      expect(o[7]).toEqual(o[2]);
      const own = end - first;
      // all-reduce n + (g-2) own (twice), reduce-scatter n - own, all-gather (g-1) own, all-to-all n - n/g, max all-reduce of 8 (blocks of 2)
      const bytes = 4 * (3 * (n + 2 * own) + (n - own) + 3 * own + (1024 - 256) + (8 + 2 * 2) + 3 * own);
      expect(res[r]!.traffic.byKind.dp.bytes).toBe(bytes);
    }
  });

  it("the gradient bucket's all-reduce and reduce-scatter: a plain sum, in place, at any offset, the slot forms' bytes and bits", async () => {
    const n = 1030;
    const script: ProbeOp[] = [
      { op: "all-reduce-bucket", group: "all", n },
      { op: "reduce-scatter-bucket", group: "all", n, offset: 2000, salt: 4 },
      { op: "all-reduce", group: "all", n },
      { op: "reduce-scatter", group: "all", n },
    ];
    const res = await run([script, script, script, script]);
    const total = sum(n, [0, 1, 2, 3]);
    const salted = sum(n, [4, 5, 6, 7]);
    for (let r = 0; r < 4; r++) {
      const o = res[r]!.outputs;
      const first = Math.floor((r * n) / 4);
      const end = Math.floor(((r + 1) * n) / 4);
      expect(o[0]).toEqual(total.map((v) => Math.fround(v)));
      expect(o[1]).toEqual(salted.slice(first, end).map((v) => Math.fround(v)));
      expect(o[0]).toEqual(o[2]);
      const own = end - first;
      // as the copying forms: all-reduce n + (g-2) own, reduce-scatter n - own
      expect(res[r]!.traffic.byKind.dp.bytes).toBe(4 * (2 * (n + 2 * own) + 2 * (n - own)));
    }
  });

  it("the bucket may be written again as soon as a collective returns, even while a slow member still reads", async () => {
    // Rank 1 stalls 40 ms just before its last read of the others' buckets; the others write new data
    // into the same region at once. Without the closing sync, rank 1 would read that new data.
    const n = 1030;
    const script = (delay: number): ProbeOp[] => [
      { op: "all-reduce-bucket", group: "all", n, readDelayMs: delay },
      { op: "all-reduce-bucket", group: "all", n, salt: 4, readDelayMs: delay },
      { op: "reduce-scatter-bucket", group: "all", n, readDelayMs: delay },
      { op: "reduce-scatter-bucket", group: "all", n, salt: 8, readDelayMs: delay },
      { op: "all-reduce-bucket", group: "all", n, salt: 12 },
    ];
    const res = await run([script(0), script(40), script(0), script(0)]);
    const at = (salt: number) => sum(n, [0, 1, 2, 3].map((r) => r + salt)).map((v) => Math.fround(v));
    for (let r = 0; r < 4; r++) {
      const o = res[r]!.outputs;
      const first = Math.floor((r * n) / 4);
      const end = Math.floor(((r + 1) * n) / 4);
      expect(o[0], `rank ${r}`).toEqual(at(0));
      expect(o[1], `rank ${r}`).toEqual(at(4));
      expect(o[2], `rank ${r}`).toEqual(at(0).slice(first, end));
      expect(o[3], `rank ${r}`).toEqual(at(8).slice(first, end));
      expect(o[4], `rank ${r}`).toEqual(at(12));
    }
  });

  it("send and receive match tags whatever the order", async () => {
    const res = await run([
      [{ op: "send", to: 1, tag: 7, n: 10 }, { op: "send", to: 1, tag: 8, n: 12 }, { op: "recv", from: 1, tag: 3 }],
      [{ op: "recv", from: 0, tag: 8 }, { op: "recv", from: 0, tag: 7 }, { op: "send", to: 0, tag: 3, n: 5 }],
      [],
      [],
    ]);
    expect(res[1]!.outputs[0]).toEqual(Array.from(probeInput(0, 12)));
    expect(res[1]!.outputs[1]).toEqual(Array.from(probeInput(0, 10)));
    expect(res[0]!.outputs[2]).toEqual(Array.from(probeInput(1, 5)));
    expect(res[0]!.traffic.byKind.pp.bytes).toBe(4 * 22);
    expect(res[1]!.traffic.byKind.pp.bytes).toBe(4 * 5);
  });
});

describe("faults", () => {
  const ok: ProbeOp[] = [{ op: "barrier", group: "all" }, { op: "all-reduce", group: "all", n: 64 }];
  async function failure(bad: ProbeOp[], timeoutSeconds = 10): Promise<ExecutionError> {
    const t0 = performance.now();
    const e = await run([ok, bad, ok, ok], timeoutSeconds).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(ExecutionError);
    expect(liveWorkers()).toBe(0);
    expect(performance.now() - t0).toBeLessThan((timeoutSeconds + 5) * 1000);
    return e as ExecutionError;
  }
  it("a rank that throws: named, with its operation", async () => {
    const e = await failure([{ op: "barrier", group: "all" }, { op: "throw" }]);
    expect(e.rank).toBe(1);
    expect(e.kind).toBe("threw");
    expect(e.message).toMatch(/rank 1 failed .*injected fault/);
  });
  it("a rank that dies in the middle of a collective", async () => {
    const e = await failure([{ op: "barrier", group: "all" }, { op: "exit" }]);
    expect(e.rank).toBe(1);
    expect(e.kind).toBe("died");
    expect(e.message).toMatch(/rank 1 exited/);
  });
  it("a collective that never completes times out, naming the rank waited for", async () => {
    const e = await failure([{ op: "barrier", group: "all" }, { op: "hang" }], 1);
    expect(e.kind).toBe("timeout");
    expect(e.message).toMatch(/all-reduce \(all, call \d+\) timed out after 1 s waiting for rank 1/);
  });
});
