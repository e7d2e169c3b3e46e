import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { inFlightMicroBatches } from "../../src/planner/cost/activations.js";
import { planVPassRatios } from "../../src/planner/cost/zb-v.js";
import { blockOf, layoutFabric } from "../../src/executor/comm/fabric.js";
import { expectedElements } from "../../src/executor/measure/accounting.js";
import { lineFit } from "../../src/executor/measure/stats.js";
import { costModelElements } from "../../src/executor/measure/cost-map.js";
import { TokenSource, tokenSlice } from "../../src/executor/model/data.js";
import { chunkLayers, joinRanks, modelUnits, sliceForRank, stageUnits, unitSlots } from "../../src/executor/model/layout.js";
import { checkExecutorLayers, validateForExecutor } from "../../src/executor/validate.js";
import { gradientBucket } from "../../src/executor/parallel/bucket.js";
import { adamState, adamStep, DEFAULT_ADAM } from "../../src/executor/parallel/adam.js";
import { coordsOf, fabricFor, groupMembers, rankOf, workerCount } from "../../src/executor/parallel/grid.js";
import { peakInFlightChunks, stageSchedule } from "../../src/executor/parallel/schedule.js";
import { microBatchCount, resolvePlan, type PlanInput } from "../../src/spec/plan.js";
import type { ModelSpec } from "../../src/spec/types.js";
import { inputErrorOf, shapeOf } from "../helpers.js";
import { tinyGpt } from "./check.js";

describe("the rank grid", () => {
  it("numbers ranks tp fastest, then cp, dp, pp, and back", () => {
    const plan = resolvePlan(tinyGpt(4), shapeOf("dgx-h100", 16), { tp: 2, cp: 2, pp: 2, dp: 2, globalBatch: 4 });
    for (let r = 0; r < 16; r++) expect(rankOf(plan, coordsOf(plan, r))).toBe(r);
    expect(coordsOf(plan, 13)).toEqual({ tp: 1, cp: 0, dp: 1, pp: 1 });
    expect(groupMembers(plan, 5, ["tp"])).toEqual([4, 5]);
    expect(groupMembers(plan, 5, ["cp"])).toEqual([5, 7]);
    expect(groupMembers(plan, 5, ["dp", "cp"])).toEqual([1, 3, 5, 7]);
    expect(groupMembers(plan, 5, ["pp"])).toEqual([5, 13]);
  });

  it("lays out the fabric without overlaps", () => {
    const model = tinyGpt(4);
    const plan = resolvePlan(model, shapeOf("dgx-h100", 8), { tp: 2, pp: 2, dp: 2, virtualStages: 2, globalBatch: 4 });
    const layout = layoutFabric(fabricFor(model, plan));
    const regions = [
      ...layout.groups.map((g) => [g.controlByte, g.dataByte + 2 * g.spec.members.length * g.slotBytes] as const),
      ...layout.groups.map((g) => [g.bucketByte, g.bucketByte + g.spec.members.length * g.bucketBytes] as const),
      ...layout.channels.map((c) => [c.headerByte, c.dataByte + c.spec.slots * c.slotBytes] as const),
    ].filter((r) => r[1] > r[0]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < regions.length; i++) expect(regions[i]![0]).toBeGreaterThanOrEqual(regions[i - 1]![1]);
    expect(layout.totalBytes).toBe(regions[regions.length - 1]![1]);
    const dp = layout.groups.filter((g) => g.spec.name.startsWith("dp["));
    expect(dp.length).toBeGreaterThan(0);
    for (const g of dp) expect(g.bucketBytes).toBeGreaterThanOrEqual(4 * g.spec.bucketFloats!);
  });

  it("gives every unit's gradient a bucket region no other live gradient shares", () => {
    for (const tied of [false, true]) {
      const model = { ...tinyGpt(3), tiedEmbeddings: tied };
      for (const zero of [0, 1, 2, 3] as const) {
        const plan = resolvePlan(model, shapeOf("dgx-h100", 2), { dp: 2, zero, globalBatch: 4 });
        const units = stageUnits(model, plan, 0).flat();
        const b = gradientBucket(units, plan.tp, zero);
        const dpGroup = fabricFor(model, plan).groups.find((g) => g.kind === "dp" && g.name.startsWith("dp["))!;
        expect(dpGroup.bucketFloats).toBe(b.floats);
        const regions = units.map((u, k) => ({ unit: u, first: b.offsets[k]!, end: b.offsets[k]! + unitSlots(u, plan.tp).size }));
        for (const r of regions) expect(r.end).toBeLessThanOrEqual(b.floats);
        // ZeRO 0/1: every gradient lives until the step's update; ZeRO 2/3: only a tied embedding's
        // outlives other units' backward (it starts in the head's).
        const lasting = zero <= 1 ? regions : regions.filter((r) => tied && r.unit.kind === "embed");
        for (const a of lasting) {
          for (const other of regions) {
            if (other !== a) expect(other.end <= a.first || other.first >= a.end, `ZeRO ${zero} ${a.unit.name} / ${other.unit.name}`).toBe(true);
          }
        }
        if (zero >= 2) expect(b.floats).toBeLessThan(regions.reduce((x, r) => x + r.end - r.first, 0));
      }
    }
  });
});

describe("pipeline schedules", () => {
  it("run every pass once, forward before backward, holding the cost model's micro-batches at the peak", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
      fc.constantFrom("naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-v"), (p, v0, k, schedule) => {
        const v = schedule === "interleaved" ? Math.max(2, v0) : schedule === "zb-v" ? 2 : 1;
        // One stage runs 1f1b only (resolvePlan refuses a pipeline schedule without a pipeline).
        if (schedule !== "1f1b" && p < 2) return;
        const m = schedule === "interleaved" ? p * k : k + p - 1;
        const layers = p * v;
        const plan = resolvePlan(tinyGpt(layers), shapeOf("dgx-h100", p), { pp: p, virtualStages: v, schedule: schedule as PlanInput["schedule"], globalBatch: m });
        expect(microBatchCount(plan)).toBe(m);
        for (let s = 0; s < p; s++) {
          const actions = stageSchedule(tinyGpt(layers), plan, s, m);
          const split = schedule === "zb-h1" || schedule === "zb-v";
          expect(actions).toHaveLength((split ? 3 : 2) * m * v);
          const seen = new Set<string>();
          for (const a of actions) {
            const key = `${a.microBatch}:${a.chunk}`;
            if (a.pass === "F") expect(seen.has(key)).toBe(false);
            else expect(seen.has(key)).toBe(true);
            // Under ZB-H1 and ZB-V each W follows its micro-batch's B.
            if (a.pass === "W") expect(seen.has(`B${key}`)).toBe(true);
            if (a.pass === "B") seen.add(`B${key}`);
            seen.add(key);
          }
          // ZB-V: the order the cost model plays for this plan's pass lengths, which the executor runs
          const ratios = schedule === "zb-v" ? planVPassRatios(tinyGpt(layers), plan) : undefined;
          expect(peakInFlightChunks(actions) / v).toBeCloseTo(inFlightMicroBatches(plan, s, m, ratios), 9);
        }
      }), { numRuns: 60 });
  });
});

describe("layout, data and optimizer", () => {
  it("splits every tensor over tp and joins it back", () => {
    const model = tinyGpt();
    const init = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
    for (const u of modelUnits(model)) {
      for (const t of u.tensors) {
        const full = init(t.shape.reduce((a, b) => a * b, 1));
        for (const tp of [1, 2, 4]) expect(joinRanks([0, 1, 2, 3].slice(0, tp).map((r) => sliceForRank(full, t, tp, r)), t)).toEqual(full);
      }
    }
  });

  it("blocks cover a buffer exactly once", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 9 }), (n, g) => {
      let at = 0;
      for (let j = 0; j < g; j++) {
        const b = blockOf(n, g, j);
        expect(b.first).toBe(at);
        at = b.end;
      }
      expect(at).toBe(n);
    }));
  });

  it("gives every split the same tokens", () => {
    const model = tinyGpt();
    const whole = resolvePlan(model, shapeOf("dgx-h100", 1), { globalBatch: 4, microBatch: 4 });
    const split = resolvePlan(model, shapeOf("dgx-h100", 4), { dp: 2, cp: 2, globalBatch: 4 });
    const all = new TokenSource(model, 32, 9, 4).tokens(2, tokenSlice(whole, 0, 0, 0));
    const src = new TokenSource(model, 32, 9, 4);
    for (let dp = 0; dp < 2; dp++) for (let mb = 0; mb < 2; mb++) for (let cp = 0; cp < 2; cp++) {
      const part = src.tokens(2, tokenSlice(split, dp, cp, mb));
      const seq = 2 * dp + mb;
      for (let i = 0; i < 16; i++) {
        expect(part.ids[i]).toBe(all.ids[(16 * cp + i) * 4 + seq]);
        expect(part.targets[i]).toBe(all.targets[(16 * cp + i) * 4 + seq]);
      }
    }
  });

  it("Adam on shards equals Adam on the whole", () => {
    const n = 1001;
    const w = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const g = Float32Array.from({ length: n }, (_, i) => Math.cos(3 * i) * 1e-3);
    const whole = w.slice();
    const s = adamState(n);
    for (let t = 1; t <= 3; t++) adamStep(whole, g, s, t, DEFAULT_ADAM);
    for (let j = 0; j < 3; j++) {
      const b = blockOf(n, 3, j);
      const part = w.slice(b.first, b.end);
      const st = adamState(part.length);
      for (let t = 1; t <= 3; t++) adamStep(part, g.subarray(b.first, b.end), st, t, DEFAULT_ADAM);
      expect(part).toEqual(whole.subarray(b.first, b.end));
    }
  });

  it("fits a line", () => {
    expect(lineFit([1, 2, 3], [5, 7, 9])).toEqual({ a: 3, b: 2 });
  });
});

describe("interleaved layouts the executor runs (validate.ts checkExecutorLayers)", () => {

  it("refuses the cost model's stages one layer short at the ends, which it would run with half-layer chunks", () => {
    // resolvePlan takes them (spec/plan.ts fillsChunks); chunkLayers gave tiny-gpt's [1, 1] no layer at all
    // and a 6-layer [3, 3] chunks of 1.5 layers, which failed inside a rank.
    for (const [layers, given] of [[2, [1, 1]], [6, [3, 3]]] as const) {
      const model = tinyGpt(layers);
      const plan = resolvePlan(model, shapeOf("dgx-h100", 2), { pp: 2, virtualStages: 2, layersPerStage: [...given], flashAttention: false });
      const e = inputErrorOf(() => validateForExecutor(model, plan));
      expect(e.field).toBe("virtualStages");
      expect(e.message).toContain("equal chunks of whole layers");
    }
    // Without a layout (execute checks the flags before resolvePlan): what is valid is what the executor runs.
    {
      // A tied embedding on two stages runs under ZeRO 0/1 (its copies' sum needs whole gradients), not under
      // ZeRO 2/3 or parameter servers; with the head on the embedding's stage of a pipeline (ZB-V) anything
      // but ZeRO 3, whose extra gathers of the embedding for the head, in another pass, the cost model does not
      // count; on one stage ZeRO 3 too (the embedding's weights held through each pass). Each refusal names the field.
      const tied = { ...tinyGpt(4), tiedEmbeddings: true };
      const on = (input: PlanInput) => resolvePlan(tied, shapeOf("dgx-h100", 4), { pp: 2, flashAttention: false, ...input });
      expect(() => validateForExecutor(tied, on({ dp: 2, zero: 1 }))).not.toThrow();
      expect(inputErrorOf(() => validateForExecutor(tied, on({ dp: 2, zero: 2 }))).field).toBe("zero");
      expect(inputErrorOf(() => validateForExecutor(tied, on({ dp: 2, parameterServers: 1 }))).field).toBe("parameterServers");
      expect(() => validateForExecutor(tied, on({ schedule: "zb-v", dp: 2, zero: 2 }))).not.toThrow();
      expect(inputErrorOf(() => validateForExecutor(tied, on({ schedule: "zb-v", dp: 2, zero: 3 }))).message).toContain("would gather the embedding's weights again");
      expect(() => validateForExecutor(tied, on({ pp: 1, dp: 4, zero: 3 }))).not.toThrow();
    }
    const e = inputErrorOf(() => checkExecutorLayers(2, { pp: 2, virtualStages: 2, schedule: "interleaved", layersPerStage: undefined }));
    expect(e.valid).toBe("1 (pp * virtualStages dividing 2 layers; 1 is no interleaving)");
    expect(inputErrorOf(() => checkExecutorLayers(6, { pp: 2, virtualStages: 2, schedule: "interleaved", layersPerStage: undefined })).valid).toContain("1, 3 (");
    // Equal stages of whole chunks run (6 layers, pp 2, v 3: a layer a chunk); stages of whole chunks but of
    // different sizes do not (the chunks are taken to be equal).
    expect(() => checkExecutorLayers(6, { pp: 2, virtualStages: 3, schedule: "interleaved", layersPerStage: [3, 3] })).not.toThrow();
    const uneven = inputErrorOf(() => checkExecutorLayers(12, { pp: 2, virtualStages: 2, schedule: "interleaved", layersPerStage: [4, 8] }));
    expect([uneven.field, uneven.valid]).toEqual(["layersPerStage", "6,6 (every stage the same multiple of virtualStages(2))"]);
  });

  // Layouts built from their definition: pp x v equal chunks of `size` whole layers each, or `short` layers
  // fewer than such a layout (1 .. pp*v - 1), which cannot be cut into pp x v equal chunks of whole layers.
  const degrees = fc.record({ pp: fc.integer({ min: 2, max: 4 }), v: fc.integer({ min: 2, max: 4 }) });

  it("runs pp x v equal chunks of whole layers, each layer in exactly one chunk, in order", () => {
    fc.assert(fc.property(degrees, fc.integer({ min: 1, max: 3 }), ({ pp, v }, size) => {
      const layers = pp * v * size;
      expect(() => checkExecutorLayers(layers, { pp: pp, virtualStages: v, schedule: "interleaved", layersPerStage: undefined })).not.toThrow();
      const plan = resolvePlan(tinyGpt(layers), shapeOf("dgx-h100", pp), { pp, virtualStages: v, globalBatch: 4 * pp });
      const chunks = Array.from({ length: v }, (_, c) => Array.from({ length: pp }, (_, s) => chunkLayers(plan, s, c))).flat();
      for (const chunk of chunks) expect(chunk).toHaveLength(size);
      expect(chunks.flat()).toEqual(Array.from({ length: layers }, (_, i) => i));
    }));
  });

  it("refuses a layer count that does not cut into pp x v equal chunks, naming virtualStages", () => {
    fc.assert(fc.property(degrees, fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 15 }), ({ pp, v }, size, short) => {
      fc.pre(short < pp * v);
      const layers = pp * v * (size + 1) - short;
      const e = inputErrorOf(() => checkExecutorLayers(layers, { pp: pp, virtualStages: v, schedule: "interleaved", layersPerStage: undefined }));
      expect([e.field, e.value]).toEqual(["virtualStages", v]);
    }));
  });
});

describe("the executor's bytes against the cost model's, for plans not executed here", () => {
  const plans: [number, PlanInput, number][] = [
    [8, { tp: 4, dp: 2, zero: 2 }, 2], [8, { tp: 2, pp: 2, dp: 2, zero: 3 }, 2], [8, { pp: 4, virtualStages: 2, dp: 2 }, 8],
    [8, { cp: 4, tp: 2 }, 2], [8, { tp: 4, sequenceParallel: false, pp: 2 }, 4], [4, { dp: 4, zero: 1 }, 2], [8, { cp: 2, dp: 2, tp: 2, zero: 3 }, 2],
    [8, { tp: 2, dp: 4, zero: 1 }, 2], [8, { tp: 2, pp: 2, virtualStages: 2, dp: 2, zero: 2 }, 4],
    [8, { tp: 2, pp: 2, dp: 2, zero: 3, schedule: "zb-h1" }, 2], [8, { tp: 2, sequenceParallel: false, pp: 4, schedule: "zb-h1" }, 4],
  ];
  // Llama-style: RMSNorm, rotary positions, SwiGLU, no biases, grouped K/V heads (fewer replicated weights).
  const llama: Partial<ModelSpec> = { mlp: "swiglu", norm: "rmsnorm", positionEmbedding: "rope", linearBias: false, kvHeads: 2 };
  const moe: Partial<ModelSpec> = { moe: { experts: 4, topK: 2 } };
  const cases: [number, PlanInput, number, Partial<ModelSpec>][] = [
    ...plans.map(([g, i, l]): [number, PlanInput, number, Partial<ModelSpec>] => [g, i, l, {}]),
    [8, { tp: 2, dp: 2, pp: 2, zero: 1 }, 2, llama], [4, { tp: 2, cp: 2, zero: 3 }, 2, llama],
    // A mixture of experts with tp and ep together (the alltoall dispatcher), also over cp and pp.
    [8, { tp: 2, dp: 4, ep: 4, zero: 1 }, 2, moe], [8, { tp: 2, cp: 2, dp: 2, ep: 2, zero: 2 }, 2, moe],
    [8, { tp: 2, pp: 2, dp: 2, ep: 2, recompute: "full" }, 2, moe], [8, { tp: 4, dp: 2, zero: 3 }, 2, moe],
  ];
  for (const [gpus, input, layers, spec] of cases) {
    it(`${JSON.stringify(input)}${spec === llama ? " llama-style" : spec === moe ? " experts" : ""}`, () => {
      const model = { ...tinyGpt(layers), ...spec };
      const shape = shapeOf("dgx-h100", gpus);
      const plan = resolvePlan(model, shape, { globalBatch: 8, ...input });
      const cost = costModelElements(model, shape, plan);
      for (const kind of ["tp", "cp", "pp", "dp", "ep"] as const) {
        let worst = 0;
        for (let r = 0; r < workerCount(plan); r++) {
          const e = expectedElements(model, plan, r);
          const all = Object.entries(e).filter(([p]) => p.startsWith(`${kind}.`)).reduce((a, [, v]) => a + v, 0);
          worst = Math.max(worst, all);
        }
        expect(worst, kind).toBeCloseTo(cost[kind], 6);
      }
      expect(unitSlots(modelUnits(model)[1]!, plan.tp).size).toBeGreaterThan(0);
    });
  }
});
