import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { estimate } from "../../src/planner/cost/estimate.js";
import type { PlanInput } from "../../src/spec/plan.js";
import { planFor, shapeOf } from "../helpers.js";

const h100 = shapeOf("dgx-h100", 64);

const planArb = fc.record({
  tp: fc.constantFrom(1, 2, 4, 8),
  pp: fc.constantFrom(1, 2, 4),
  cp: fc.constantFrom(1, 2),
  microBatch: fc.constantFrom(1, 2),
  zero: fc.constantFrom(0, 1, 2, 3),
  recompute: fc.constantFrom<"none" | "selective" | "full">("none", "selective", "full"),
  sequenceParallel: fc.boolean(),
  flashAttention: fc.boolean(),
  schedule: fc.constantFrom<"1f1b" | "gpipe" | "zb-h1" | "zb-v" | "naive">("1f1b", "gpipe", "zb-h1", "zb-v", "naive"),
});

describe("Estimate invariants (property)", () => {
  it("time breakdown adds up to the step; throughput, MFU and HFU agree with it", () => {
    fc.assert(fc.property(planArb, (input) => {
      // one stage runs gradient accumulation (1F1B); resolvePlan refuses a pipeline schedule there, and SP without tp
      const valid = { ...input, schedule: input.pp === 1 ? "1f1b" : input.schedule, sequenceParallel: input.tp > 1 && input.sequenceParallel };
      const { model, plan } = planFor("llama3-8b", h100, { ...valid, globalBatch: 256 } as PlanInput);
      const e = estimate(model, h100, plan);
      const b = e.time.breakdown;
      const sum = b.computeSeconds + b.tpCommSeconds + b.cpCommSeconds + b.ppCommSeconds + b.dpCommSeconds + b.bubbleSeconds + b.optimizerSeconds + b.epCommSeconds;
      expect(sum).toBeCloseTo(e.time.stepSeconds, 9);
      for (const v of Object.values(b)) expect(v).toBeGreaterThanOrEqual(0);
      expect(e.throughput.tokensPerSecond).toBeCloseTo((plan.globalBatch * plan.seqLen) / e.time.stepSeconds, 6);
      expect(e.throughput.mfu).toBeGreaterThan(0);
      expect(e.throughput.mfu).toBeLessThanOrEqual(e.throughput.hfu);
      expect(e.throughput.hfu).toBeLessThan(1);
      expect(e.memory.fits).toBe(e.memory.peakBytesPerGpu <= e.memory.capacityBytes);
      expect(e.pipeline.bubbleFraction).toBeGreaterThanOrEqual(0);
      expect(e.pipeline.bubbleFraction).toBeLessThan(1);
      if (plan.pp === 1) expect(b.bubbleSeconds).toBeCloseTo(0, 12);
    }), { numRuns: 150 });
  });

  it("no communication is charged to a degree of 1", () => {
    const { model, plan } = planFor("llama3-8b", shapeOf("dgx-h100", 1), {});
    const e = estimate(model, shapeOf("dgx-h100", 1), plan);
    expect(e.communication.bytesPerGpuPerStep).toEqual({ tp: 0, cp: 0, pp: 0, dp: 0, ep: 0 });
    expect(e.time.breakdown.tpCommSeconds + e.time.breakdown.dpCommSeconds + e.time.breakdown.ppCommSeconds).toBe(0);
  });

  it("the worst stage of 1F1B is the first (it holds p micro-batches), all else equal", () => {
    const { model, plan } = planFor("llama3-70b", h100, { tp: 8, pp: 8, globalBatch: 64 });
    expect(estimate(model, h100, plan).memory.worstStage).toBe(0);
  });

  it("tensor parallel across nodes costs at least as much per byte as inside a node, and more in latency", () => {
    const shape = shapeOf("dgx-h100", 16);
    const inside = planFor("llama3-70b", shape, { tp: 8, pp: 2, globalBatch: 64 });
    const across = planFor("llama3-70b", shape, { tp: 16, pp: 1, globalBatch: 64 });
    const tpShare = (x: typeof inside) => {
      const e = estimate(x.model, shape, x.plan);
      return e.time.breakdown.tpCommSeconds / e.communication.bytesPerGpuPerStep.tp;
    };
    // NCCL drives one NIC per ring channel, so 8 members per node reach min(NVLink, 8 NICs): close to NVLink
    // for large buffers; the network's higher per-step latency still makes every byte dearer.
    expect(tpShare(across)).toBeGreaterThan(tpShare(inside));
  });

  it("a faster GPU with the same topology gives a shorter step (--gpu swaps the GPU only)", () => {
    const b200 = { ...h100, spec: { ...h100.spec, gpu: shapeOf("dgx-b200", 8).spec.gpu } };
    const a = planFor("llama3-70b", h100, { tp: 8, pp: 4, globalBatch: 128 });
    const b = planFor("llama3-70b", b200, { tp: 8, pp: 4, globalBatch: 128 });
    expect(estimate(b.model, b200, b.plan).time.stepSeconds).toBeLessThan(estimate(a.model, h100, a.plan).time.stepSeconds);
  });
});

describe("the older forms as plans", () => {
  it("naive model parallelism keeps one micro-batch in flight: bubble (p-1)/p, activations of one micro-batch", () => {
    const shape = shapeOf("dgx-h100", 4);
    const naive = planFor("llama3-8b", shape, { pp: 4, schedule: "naive", globalBatch: 16 });
    const e = estimate(naive.model, shape, naive.plan);
    const gpipe = planFor("llama3-8b", shape, { pp: 4, schedule: "gpipe", globalBatch: 16 });
    // (p-1)/p = 0.75 for uniform stages; the last stage also carries the output layer, so a little less.
    expect(e.pipeline.bubbleFraction).toBeGreaterThan(0.65);
    expect(e.pipeline.bubbleFraction).toBeGreaterThan(estimate(gpipe.model, shape, gpipe.plan).pipeline.bubbleFraction);
    expect(e.memory.breakdown.activationsBytes).toBeLessThan(estimate(gpipe.model, shape, gpipe.plan).memory.breakdown.activationsBytes);
    expect(e.time.stepSeconds).toBeGreaterThan(estimate(gpipe.model, shape, gpipe.plan).time.stepSeconds);
  });

  it("parameter servers: workers hold no optimizer; more servers relieve the servers' links", () => {
    const shape = shapeOf("dgx-h100", 32);
    const one = planFor("llama3-8b", shape, { parameterServers: 1, globalBatch: 256 });
    const eight = planFor("llama3-8b", shape, { parameterServers: 8, globalBatch: 256 });
    const e1 = estimate(one.model, shape, one.plan);
    const e8 = estimate(eight.model, shape, eight.plan);
    expect(e1.memory.breakdown.optimizerBytes).toBe(0);
    expect(e8.time.breakdown.dpCommSeconds).toBeLessThan(e1.time.breakdown.dpCommSeconds);
    // With one server for 32 workers, the server link carries 32x a worker's traffic.
    expect(e1.time.breakdown.dpCommSeconds / e8.time.breakdown.dpCommSeconds).toBeGreaterThan(4);
  });

  it("asynchronous updates with staleness >= 1 overlap the exchange with compute: never slower than synchronous", () => {
    const shape = shapeOf("dgx-h100", 16);
    for (const servers of [1, 4, 16]) {
      const sync = planFor("llama3-8b", shape, { parameterServers: servers, globalBatch: 128 });
      const async = planFor("llama3-8b", shape, { parameterServers: servers, asynchronous: true, staleness: 2, globalBatch: 128 });
      const s = estimate(sync.model, shape, sync.plan).time;
      const a = estimate(async.model, shape, async.plan).time;
      expect(a.stepSeconds).toBeLessThanOrEqual(s.stepSeconds);
      // async step = max(compute, exchange); sync = compute + exchange
      const compute = s.stepSeconds - s.breakdown.dpCommSeconds;
      expect(a.stepSeconds).toBeCloseTo(Math.max(compute, s.breakdown.dpCommSeconds), 9);
    }
  });
});
