import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { interleavedWarmup, Pass, stagePrograms, warmupForwards } from "../../src/simulator/schedules.js";
import { zbvOrder } from "../../src/planner/cost/zb-v.js";
import type { Schedule } from "../../src/spec/types.js";

const SCHEDULES: Schedule[] = ["naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v"];

describe("stage programs", () => {
  it("every stage runs each (micro-batch, chunk) forward, backward (and W for ZB-H1, ZB-V) exactly once, in that order", () => {
    fc.assert(fc.property(fc.constantFrom(...SCHEDULES), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 4 }), (schedule, pIn, k, vIn) => {
      const p = schedule === "zb-v" ? Math.max(2, pIn) : pIn;
      const v = schedule === "interleaved" ? vIn : schedule === "zb-v" ? 2 : 1;
      const m = schedule === "interleaved" ? k * p : k * 3;
      const passes = schedule === "zb-h1" || schedule === "zb-v" ? 3 : 2;
      for (const prog of stagePrograms(schedule, p, m, v)) {
        expect(prog.length).toBe(m * v * passes);
        const seen = new Int32Array(m * v * 3).fill(-1); // position of each (pass, mb, chunk)
        for (let i = 0; i < prog.length; i++) {
          const key = (prog.pass[i]! * m + prog.microBatch[i]!) * v + prog.chunk[i]!;
          expect(seen[key]).toBe(-1);
          seen[key] = i;
        }
        for (let mb = 0; mb < m; mb++) {
          for (let c = 0; c < v; c++) {
            const at = (pass: number) => seen[(pass * m + mb) * v + c]!;
            expect(at(Pass.forward)).toBeLessThan(at(Pass.backward));
            if (passes === 3) expect(at(Pass.backward)).toBeLessThan(at(Pass.weight));
          }
        }
      }
    }), { numRuns: 80 });
  });

  it("1F1B warms up with p - i - 1 forwards, then alternates; the last stage starts its first backward at once", () => {
    const progs = stagePrograms("1f1b", 4, 8, 1);
    progs.forEach((prog, i) => {
      const warm = warmupForwards(4, i, 8);
      expect(warm).toBe(3 - i);
      for (let k = 0; k <= warm; k++) expect(prog.pass[k]).toBe(Pass.forward);
      expect(prog.pass[warm + 1]).toBe(Pass.backward);
    });
  });

  it("interleaved follows Megatron-LM: 2(p - i - 1) + (v - 1)p warm-up chunks, groups of p micro-batches per chunk", () => {
    const p = 4, v = 2, m = 8;
    const prog = stagePrograms("interleaved", p, m, v)[0]!;
    expect(interleavedWarmup(p, 0, m, v)).toBe(10);
    const first = Array.from({ length: 10 }, (_, k) => `${prog.microBatch[k]}.${prog.chunk[k]}`);
    expect(first).toEqual(["0.0", "1.0", "2.0", "3.0", "0.1", "1.1", "2.1", "3.1", "4.0", "5.0"]);
    // The first backward is micro-batch 0 of the last chunk.
    expect([prog.pass[11], prog.microBatch[11], prog.chunk[11]]).toEqual([Pass.backward, 0, 1]);
  });

  it("ZB-H1 defers weight-gradient passes by the stage index: stage i never has more than i pending", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 30 }), (p, m) => {
      stagePrograms("zb-h1", p, m, 1).forEach((prog, i) => {
        let pending = 0;
        let most = 0;
        for (let k = 0; k < prog.length; k++) {
          if (prog.pass[k] === Pass.backward) pending++;
          if (prog.pass[k] === Pass.weight) pending--;
          // Right after a B (before its W could run) stage i may hold i + 1; after the W step, at most i.
          if (prog.pass[k] !== Pass.backward) most = Math.max(most, pending);
        }
        expect(most).toBeLessThanOrEqual(i);
      });
    }), { numRuns: 40 });
  });

  it("ZB-V's order: each pass after its inputs, on any stage, for any pass lengths; with equal ones never more than 2p chunks held", () => {
    const quarters = fc.integer({ min: 1, max: 32 }).map((k) => k / 4);
    fc.assert(fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), quarters, quarters, (p, m, equal, b, w) => {
      const ratios = equal ? { backward: 1, weight: 1 } : { backward: b, weight: w };
      const progs = stagePrograms("zb-v", p, m, 2, ratios);
      // Play the orders with unit passes: a pass may run once its inputs ran, so a stall is a bad order.
      const vs = (s: number, c: number) => (c === 0 ? s : 2 * p - 1 - s);
      const done = new Set<string>();
      const key = (pass: number, v: number, mb: number) => `${pass}.${v}.${mb}`;
      const ready = (pass: number, s: number, c: number, mb: number) => {
        const v = vs(s, c);
        if (pass === Pass.forward) return v === 0 || done.has(key(Pass.forward, v - 1, mb));
        if (pass === Pass.backward) return done.has(key(Pass.forward, v, mb)) && (v === 2 * p - 1 || done.has(key(Pass.backward, v + 1, mb)));
        return done.has(key(Pass.backward, v, mb));
      };
      const next = new Array<number>(p).fill(0);
      let left = progs.reduce((n, prog) => n + prog.length, 0);
      while (left > 0) {
        const ran: string[] = [];
        progs.forEach((prog, s) => {
          const k = next[s]!;
          if (k < prog.length && ready(prog.pass[k]!, s, prog.chunk[k]!, prog.microBatch[k]!)) {
            ran.push(key(prog.pass[k]!, vs(s, prog.chunk[k]!), prog.microBatch[k]!));
            next[s]!++;
          }
        });
        expect(ran.length).toBeGreaterThan(0);
        for (const r of ran) done.add(r);
        left -= ran.length;
      }
      // (where the limit closes a cycle, one forward past it breaks the stall: counted in heldChunks)
      progs.forEach((prog, s) => {
        let held = 0;
        let most = 0;
        for (let k = 0; k < prog.length; k++) {
          held += prog.pass[k] === Pass.forward ? 1 : prog.pass[k] === Pass.weight ? -1 : 0;
          most = Math.max(most, held);
        }
        expect(most).toBe(zbvOrder(p, m, ratios).heldChunks[s]);
        if (equal) expect(most).toBeLessThanOrEqual(Math.min(2 * p, 2 * m));
      });
    }), { numRuns: 150 });
  });

  it("ZB-V with equal passes ends p - 1 passes after the work itself once m >= p (the last stage's wait for the first micro-batch), at most ceil(p/4) more", () => {
    for (const p of [2, 3, 4, 8]) {
      for (const m of [p, 2 * p, 4 * p]) expect([p, m, zbvOrder(p, m).playLength - 6 * m]).toEqual([p, m, p - 1]);
    }
    for (let p = 2; p <= 16; p++) {
      for (const m of [p, 2 * p, 3 * p, 8 * p]) {
        const late = zbvOrder(p, m).playLength - 6 * m - (p - 1);
        expect(late).toBeGreaterThanOrEqual(0);
        expect(late).toBeLessThanOrEqual(Math.ceil(p / 4));
      }
    }
  });
});
