import { describe, expect, it } from "vitest";
import type { FabricSpec } from "../../src/executor/comm/fabric.js";
import { probeInput, type ProbeOp, type ProbeResult } from "../../src/executor/comm/probe.js";
import { ExecutionError, launch, liveWorkers } from "../../src/executor/run/launch.js";

const fabric: FabricSpec = {
  ranks: 4,
  groups: [
    { name: "all", kind: "dp", members: [0, 1, 2, 3], capacityFloats: 4096 },
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
