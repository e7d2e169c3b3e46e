import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { buildPipeline } from "../../src/simulator/build-pipeline.js";
import { DeadlockError, runGraph } from "../../src/simulator/engine.js";
import { GraphBuilder } from "../../src/simulator/graph.js";
import { simulateInput } from "../../src/simulator/simulate.js";
import { OpKind, STREAMS, Stream, type SimInput } from "../../src/simulator/types.js";
import type { Schedule } from "../../src/spec/types.js";
import { stage } from "./fixtures.js";

describe("event engine", () => {
  it("a collective starts when its last member is ready", () => {
    const b = new GraphBuilder(3);
    const work = [1, 3, 2].map((s, r) => b.op(OpKind.forward, r, Stream.compute, s));
    const allReduce = b.op(OpKind.tp, 0, Stream.collective, 0.5);
    for (const w of work) b.edge(w, allReduce);
    const run = runGraph(b.freeze().graph);
    expect(run.startSeconds[allReduce]).toBe(3);
    expect(run.endSeconds[allReduce]).toBe(3.5);
    expect(run.critical[allReduce]).toBe(work[1]);
  });

  it("a first-come-first-served resource serves one op at a time, in arrival order", () => {
    const b = new GraphBuilder(4);
    const arrive = [0.3, 0.1, 0.2].map((s, r) => b.op(OpKind.forward, r, Stream.compute, s));
    const sends = arrive.map((a, r) => {
      const x = b.op(OpKind.psPush, r, Stream.dp, 1);
      b.fifo(x, 3, Stream.recv);
      b.edge(a, x);
      return x;
    });
    const run = runGraph(b.freeze().graph);
    expect(Array.from(sends, (x) => run.startSeconds[x])).toEqual([2.1, 0.1, 1.1]);
    expect(run.critical[sends[2]!]).toBe(sends[1]); // it waited for the server, not for its own data
    expect(run.spanSeconds).toBeCloseTo(3.1, 12);
  });

  it("reports a deadlock instead of returning a partial timeline", () => {
    const b = new GraphBuilder(1);
    const x = b.op(OpKind.forward, 0, Stream.compute, 1);
    const y = b.op(OpKind.backward, 0, Stream.compute, 1);
    b.edge(x, y);
    b.edge(y, x);
    expect(() => runGraph(b.freeze().graph)).toThrow(DeadlockError);
  });

  it("grows past its initial capacity and keeps every op and edge", () => {
    const b = new GraphBuilder(1);
    let prev = -1;
    for (let i = 0; i < 5000; i++) {
      const op = b.op(OpKind.forward, 0, Stream.compute, 0.001);
      b.edge(prev, op);
      prev = op;
    }
    const run = runGraph(b.freeze().graph);
    expect(run.events).toBe(5000);
    expect(run.spanSeconds).toBeCloseTo(5, 9);
  });
});

const scheduleArb = fc.constantFrom<Schedule>("naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v");
const jitter = fc.double({ min: 0.5, max: 2, noNaN: true });

/** Random non-uniform stages with tp/cp/ep, data-parallel traffic and pipeline transfers. */
const inputArb = fc.record({
  schedule: scheduleArb, p: fc.integer({ min: 1, max: 6 }), k: fc.integer({ min: 1, max: 3 }), v: fc.integer({ min: 2, max: 3 }),
  scales: fc.array(jitter, { minLength: 6, maxLength: 6 }), comm: fc.double({ min: 0, max: 0.3, noNaN: true }),
  zero: fc.integer({ min: 0, max: 3 }), buckets: fc.integer({ min: 1, max: 4 }),
}).map(({ schedule, p, k, v, scales, comm, zero, buckets }): SimInput => {
  const pp = schedule === "interleaved" || schedule === "zb-v" ? Math.max(2, p) : p;
  const dp = {
    reduceOnceSeconds: zero <= 1 ? comm * 3 : 0, gatherOnceSeconds: zero === 1 || zero === 2 ? comm : 0,
    gatherForwardSeconds: zero === 3 ? comm : 0, gatherBackwardSeconds: zero === 3 ? comm : 0,
    reducePerMicroBatchSeconds: zero >= 2 ? comm : 0, buckets,
  };
  return {
    schedule, microBatches: k * pp, virtualStages: schedule === "interleaved" ? v : schedule === "zb-v" ? 2 : 1, ppTransferSeconds: comm / 4,
    stages: Array.from({ length: pp }, (_, i) => stage({
      f: scales[i % 6]!, b: 2 * scales[(i + 1) % 6]!, w: scales[(i + 2) % 6]!, recomputeSeconds: comm,
      tp: { forward: comm / 2, backward: comm / 2 }, cp: { forward: comm / 8, backward: 0 }, ep: { forward: 0, backward: comm / 8 },
      dp, optimizerSeconds: scales[(i + 3) % 6]! / 10,
    })),
  };
});

describe("a simulated step is a valid execution (random stages, communication and data-parallel traffic)", () => {
  it("no op starts before a predecessor ends, and no stream or link runs two ops at once", () => {
    fc.assert(fc.property(inputArb, (input) => {
      const { graph, columns } = buildPipeline(input).builder.freeze();
      const run = runGraph(graph);
      for (let u = 0; u < graph.size; u++) {
        for (let k = graph.succStart[u]!; k < graph.succStart[u + 1]!; k++) {
          expect(run.startSeconds[graph.succ[k]!]!).toBeGreaterThanOrEqual(run.endSeconds[u]!);
        }
      }
      const byResource = new Map<number, number[]>();
      for (let op = 0; op < graph.size; op++) {
        const own = columns.rank[op]! * STREAMS + columns.stream[op]!;
        for (const r of graph.fifo[op]! >= 0 && graph.fifo[op] !== own ? [own, graph.fifo[op]!] : [own]) {
          byResource.set(r, [...(byResource.get(r) ?? []), op]);
        }
      }
      for (const ops of byResource.values()) {
        ops.sort((a, b) => run.startSeconds[a]! - run.startSeconds[b]! || run.endSeconds[a]! - run.endSeconds[b]!);
        for (let i = 1; i < ops.length; i++) expect(run.startSeconds[ops[i]!]!).toBeGreaterThanOrEqual(run.endSeconds[ops[i - 1]!]! - 1e-12);
      }
    }), { numRuns: 60 });
  });

  it("the critical path runs without gaps from 0 to the end of the step", () => {
    fc.assert(fc.property(inputArb, (input) => {
      const t = simulateInput(input);
      const path = t.criticalPath;
      expect(t.ops.startSeconds[path[0]!]).toBe(0);
      expect(t.ops.endSeconds[path[path.length - 1]!]).toBe(t.spanSeconds);
      for (let i = 1; i < path.length; i++) expect(t.ops.startSeconds[path[i]!]).toBe(t.ops.endSeconds[path[i - 1]!]);
    }), { numRuns: 60 });
  });

  it("the same input gives the same timeline (ties resolve by op id)", () => {
    fc.assert(fc.property(inputArb, (input) => {
      const a = simulateInput(input);
      const b = simulateInput(input);
      expect(Array.from(b.ops.startSeconds)).toEqual(Array.from(a.ops.startSeconds));
      expect(b.exposed).toEqual(a.exposed);
    }), { numRuns: 20 });
  });

  it("the breakdown adds up to the step and nothing is negative", () => {
    fc.assert(fc.property(inputArb, (input) => {
      const t = simulateInput(input);
      const parts = Object.values(t.exposed);
      for (const x of parts) expect(x).toBeGreaterThanOrEqual(-1e-12);
      expect(parts.reduce((a, b) => a + b, 0)).toBeCloseTo(t.stepSeconds, 9);
    }), { numRuns: 60 });
  });
});
