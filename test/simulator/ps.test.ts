import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { estimate } from "../../src/planner/cost/estimate.js";
import { simulate, simulateInput } from "../../src/simulator/simulate.js";
import { OpKind, Stream, type SimInput, type SimParameterServers } from "../../src/simulator/types.js";
import { planFor, relErr, shapeOf } from "../helpers.js";
import { stage } from "./fixtures.js";

/** m = 2 micro-batches of 1 s forward and 1 s backward: 4 s of compute per worker per step. */
function psInput(ps: Partial<SimParameterServers> & { workers: number; servers: number }): SimInput {
  return {
    schedule: "1f1b", microBatches: 2, virtualStages: 1, stages: [stage({ w: 0 })], ppTransferSeconds: 0,
    parameterServers: { pushSeconds: 0.1, pullSeconds: 0.05, updateSeconds: 0, asynchronous: false, staleness: 0, ...ps },
  };
}
const COMPUTE = 4;

describe("parameter servers", () => {
  it("synchronous: compute, then every worker's push and pull through the busier of its own link and a server's", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 6 }), (workers, servers) => {
      const t = simulateInput(psInput({ workers, servers }));
      const comm = Math.max(workers, servers) * (0.1 + 0.05); // parameter-server.ts: max(worker link, server link)
      expect(t.stepSeconds).toBeCloseTo(COMPUTE + comm, 9);
      expect(t.exposed.dpSeconds).toBeCloseTo(comm, 9);
      expect(t.ranks.filter((r) => r.role === "worker")).toHaveLength(workers);
      expect(t.ranks.filter((r) => r.role === "server")).toHaveLength(servers);
    }), { numRuns: 40 });
  });

  it("asynchronous with staleness >= 1: the steady step is the slower of compute and the servers' links", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.constantFrom(0.05, 0.2, 0.5),
      (workers, servers, staleness, push) => {
        const t = simulateInput(psInput({ workers, servers, staleness, asynchronous: true, pushSeconds: push, pullSeconds: push / 2 }));
        expect(t.steps).toBe(staleness + 3);
        expect(t.stepSeconds).toBeCloseTo(Math.max(COMPUTE, Math.max(workers, servers) * 1.5 * push), 9);
      }), { numRuns: 40 });
  });

  it("asynchronous workers never wait for each other: each starts its next step as soon as its own compute ends", () => {
    const t = simulateInput(psInput({ workers: 6, servers: 2, asynchronous: true, staleness: 1, pushSeconds: 0.5, pullSeconds: 0.25 }));
    const o = t.ops;
    for (let w = 0; w < 6; w++) {
      let first = -1; // worker w's first forward of step 1
      for (let op = o.size - 1; op >= 0; op--) if (o.rank[op] === w && o.index[op] === 1 && o.kind[op] === OpKind.forward) first = op;
      expect(o.startSeconds[first]).toBe(COMPUTE); // right after its step-0 compute, pushes still queued
    }
    // The servers' links are busy with a queue of pushes and pulls from all workers.
    const server = t.ranks.find((r) => r.role === "server")!;
    expect(server.busySeconds[Stream.recv]).toBeCloseTo(t.steps * 6 * 0.75, 9);
  });

  it("asynchronous without staleness still beats synchronous: workers stagger instead of queueing at once", () => {
    const sync = simulateInput(psInput({ workers: 4, servers: 2, pushSeconds: 0.5, pullSeconds: 0.5 }));
    const async0 = simulateInput(psInput({ workers: 4, servers: 2, pushSeconds: 0.5, pullSeconds: 0.5, asynchronous: true, staleness: 0 }));
    expect(sync.stepSeconds).toBeCloseTo(COMPUTE + 4, 9);
    expect(async0.stepSeconds).toBeLessThan(sync.stepSeconds);
    expect(async0.stepSeconds).toBeGreaterThanOrEqual(Math.max(COMPUTE, 4));
  });

  it("a parameter-server plan simulates to the analytic step (one stage, symmetric workers)", () => {
    const shape = shapeOf("dgx-h100", 16);
    for (const input of [{ parameterServers: 2 }, { parameterServers: 2, asynchronous: true }, { parameterServers: 4, asynchronous: true, staleness: 2 }]) {
      const { model, plan } = planFor("llama3-8b", shape, { ...input, globalBatch: 64 });
      const sim = simulate(model, shape, plan).estimate;
      expect(relErr(sim.time.stepSeconds, estimate(model, shape, plan).time.stepSeconds)).toBeLessThan(1e-3);
      expect(sim.communication.bytesPerGpuPerStep.dp).toBeGreaterThan(0);
    }
  });
});
