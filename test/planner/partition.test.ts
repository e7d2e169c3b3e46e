import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { stageMemory } from "../../src/planner/cost/estimate.js";
import { planCosts, stageMicroBatchSeconds } from "../../src/planner/cost/stages.js";
import { solveExhaustively } from "../../src/planner/partition/exhaustive.js";
import { solvePartition } from "../../src/planner/partition/ilp.js";
import { fitsCapacity, objectiveSeconds, partitionProblem, stageBytes, stageSeconds, type PartitionProblem, type StageCoefficients } from "../../src/planner/partition/problem.js";
import type { ModelSpec, Plan } from "../../src/spec/types.js";
import { totalBytes } from "../../src/planner/cost/memory.js";
import { planFor, shapeOf } from "../helpers.js";

const shape = shapeOf("dgx-h100", 64);

/** The plan's layout problem and a random layout of Llama 3 8B's 32 layers: v-multiples, random recompute counts. */
function randomLayout(model: ModelSpec, plan: Plan, seed: number) {
  const v = plan.virtualStages;
  const pp = plan.pp;
  const problem = partitionProblem(model, shape, plan);
  const layers = new Array<number>(pp).fill(v);
  for (let left = 32 - v * pp, k = seed; left > 0; left -= v, k = (k * 7 + 3) % 1009) layers[k % pp]! += v;
  const recomputed = layers.map((l, i) => (seed * (i + 3)) % (l + 1));
  const probe: Plan = { ...plan, layersPerStage: layers, recomputeLayersPerStage: recomputed };
  return { problem, layers, recomputed, probe, costs: planCosts(model, shape, probe) };
}

describe("the stage-layout problem read off the cost model", () => {
  it("is exact: for random layouts, its stage time and memory equal the cost model's (property)", () => {
    fc.assert(fc.property(
      fc.constantFrom(2, 4, 8), fc.constantFrom<Plan["schedule"]>("1f1b", "gpipe", "zb-h1", "interleaved", "zb-v"), fc.constantFrom<Plan["recompute"]>("none", "selective"), fc.boolean(), fc.integer({ min: 0, max: 1000 }),
      (pp, schedule, recompute, flash, seed) => {
        const v = schedule === "interleaved" || schedule === "zb-v" ? 2 : 1;
        const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp, schedule, virtualStages: v, recompute, flashAttention: flash, globalBatch: 128 });
        const { problem, layers, recomputed, probe, costs } = randomLayout(model, plan, seed);
        for (let i = 0; i < pp; i++) {
          const c = problem.coefficients[i]!;
          expect(stageSeconds(c, layers[i]!, recomputed[i]!)).toBeCloseTo(stageMicroBatchSeconds(costs.stages[i]!), 9);
          expect(stageBytes(c, layers[i]!, recomputed[i]!) / totalBytes(stageMemory(model, probe, costs, i))).toBeCloseTo(1, 9);
        }
      },
    ), { numRuns: 40 });
  });

  it("its memory is exact with 16-bit gradients (the optimizer step's copy), ZeRO-1, DeepSpeed's kept outputs and 16-bit grads, a runtime reserve and an allocator cache (property)", () => {
    // Memory only: at 512 tokens the stage time is not affine (dpContention's min of traffic and compute).
    fc.assert(fc.property(
      fc.constantFrom(2, 4, 8), fc.constantFrom<Plan["schedule"]>("1f1b", "gpipe", "zb-h1", "interleaved", "zb-v"), fc.constantFrom<Plan["recompute"]>("none", "selective"),
      fc.constantFrom<Plan["precision"]>("bf16", "fp16"), fc.constantFrom(0, 1), fc.boolean(), fc.constantFrom(512, 8192), fc.integer({ min: 0, max: 1000 }),
      (pp, schedule, recompute, precision, zero, deepspeed, seqLen, seed) => {
        const v = schedule === "interleaved" || schedule === "zb-v" ? 2 : 1;
        const { model, plan } = planFor("llama3-8b", shape, {
          tp: 2, pp, schedule, virtualStages: v, recompute, globalBatch: 128, precision, zero, seqLen,
          ppKeepOutputs: deepspeed, keep16BitGrads: deepspeed && precision === "bf16",
          // BLOOM's stack in validate: its own runtime reserve and PyTorch's caching allocator's share on top.
          ...(deepspeed ? { runtimeReserveBytes: 4_000_000_000, allocatorCacheShare: 0.059 } : {}),
        });
        const { problem, layers, recomputed, probe, costs } = randomLayout(model, plan, seed);
        for (let i = 0; i < pp; i++) {
          expect(stageBytes(problem.coefficients[i]!, layers[i]!, recomputed[i]!) / totalBytes(stageMemory(model, probe, costs, i))).toBeCloseTo(1, 9);
        }
      },
    ), { numRuns: 80 });
  });

  it("the first stage of 1F1B needs more memory per layer than the last (more micro-batches in flight)", () => {
    const { model, plan } = planFor("llama3-70b", shape, { tp: 8, pp: 4, globalBatch: 128 });
    const c = partitionProblem(model, shape, plan).coefficients;
    expect(c[0]!.perLayerBytes).toBeGreaterThan(c[3]!.perLayerBytes);
  });
});

/** Random small instances with coefficients shaped like the real ones (positive times, recompute saves memory). */
const coefficientArb: fc.Arbitrary<StageCoefficients> = fc.record({
  fixedSeconds: fc.double({ min: 0, max: 2, noNaN: true }),
  perLayerSeconds: fc.double({ min: 0.5, max: 2, noNaN: true }),
  perRecomputedLayerSeconds: fc.double({ min: 0.1, max: 0.8, noNaN: true }),
  perLayerWeightSeconds: fc.double({ min: 0, max: 0.4, noNaN: true }),
  fixedBytes: fc.double({ min: 0, max: 20, noNaN: true }),
  perLayerBytes: fc.double({ min: 2, max: 10, noNaN: true }),
  perRecomputedLayerBytes: fc.double({ min: -1.8, max: 0, noNaN: true }),
  transientBytes: fc.double({ min: 0, max: 3, noNaN: true }),
});

/** Coefficients in GiB units, for readability, scaled to bytes. */
function gib(c: StageCoefficients): StageCoefficients {
  return { ...c, fixedBytes: c.fixedBytes * 2 ** 30, perLayerBytes: c.perLayerBytes * 2 ** 30, perRecomputedLayerBytes: c.perRecomputedLayerBytes * 2 ** 30, transientBytes: c.transientBytes * 2 ** 30 };
}

const problemArb: fc.Arbitrary<PartitionProblem> = fc
  .record({
    stages: fc.integer({ min: 1, max: 4 }),
    v: fc.constantFrom(1, 1, 2, 3),
    extra: fc.integer({ min: 0, max: 6 }),
    // layers one or two short of a multiple of v: the first and last stages hold one less (interleaving)
    short: fc.integer({ min: 0, max: 2 }),
    capacity: fc.double({ min: 10, max: 80, noNaN: true }),
    schedule: fc.constantFrom([7, 1, 0], [0, 4, 0], [7.5, 0.5, 0], [7, 1, 2]),
    coefficients: fc.array(coefficientArb, { minLength: 4, maxLength: 4 }),
    // ZB-V's shape: two chunks, both ends on the first stage, memory as the largest of several moments
    vShape: fc.boolean(),
    moments: fc.array(coefficientArb, { minLength: 8, maxLength: 8 }),
  })
  .map(({ stages: s, v: vIn, extra, short, capacity, schedule, coefficients, vShape: vWanted, moments }) => {
    const vShape = vWanted && s >= 2;
    const v = vShape ? 2 : vIn;
    return { stages: s, v, extra, short, capacity, schedule, coefficients, vShape, moments };
  })
  .map(({ stages, v, extra, short, capacity, schedule, coefficients, vShape, moments }) => ({
    layers: v * (stages + extra) - (v > 1 && stages > 1 ? short : 0),
    stages,
    layerMultiple: v,
    schedule: vShape ? "zb-v" as const : "interleaved" as const,
    capacityBytes: capacity * 2 ** 30,
    allowRecompute: true,
    maxWeight: schedule[0]!,
    sumWeight: schedule[1]!,
    weightGradFactor: schedule[2]!,
    // bytes in GiB units for readability, scaled to bytes here
    coefficients: coefficients.slice(0, stages).map((c, i) => ({
      ...gib(c),
      ...(vShape ? { moments: [gib(c), gib(moments[2 * i]!), gib(moments[2 * i + 1]!)] } : {}),
    })),
  }));

describe("the integer program (javascript-lp-solver)", () => {
  it("finds the optimum of exhaustive search on 500 random small instances (property)", () => {
    let feasible = 0;
    const solvers = new Map<string, number>();
    fc.assert(fc.property(problemArb, (p) => {
      const exact = solveExhaustively(p);
      const ilp = solvePartition(p);
      if (exact === undefined) {
        expect(ilp).toBeUndefined();
        return;
      }
      feasible++;
      expect(ilp).toBeDefined();
      solvers.set(ilp!.solver!, (solvers.get(ilp!.solver!) ?? 0) + 1);
      // the program's layout is valid and fits ...
      expect(ilp!.layersPerStage.reduce((a, b) => a + b, 0)).toBe(p.layers);
      ilp!.layersPerStage.forEach((l, i) => {
        const end = i === 0 || i === p.stages - 1;
        expect(l).toBeGreaterThanOrEqual(1);
        expect(l % p.layerMultiple === 0 || (end && (l + 1) % p.layerMultiple === 0)).toBe(true);
        expect(ilp!.recomputeLayersPerStage[i]!).toBeLessThanOrEqual(l);
        expect(fitsCapacity(p, stageBytes(p.coefficients[i]!, l, ilp!.recomputeLayersPerStage[i]!))).toBe(true);
      });
      // ... and is as good as the best of all layouts
      expect(ilp!.objectiveSeconds).toBeCloseTo(exact.objectiveSeconds, 6);
      expect(objectiveSeconds(p, ilp!.layersPerStage, ilp!.recomputeLayersPerStage)).toBeCloseTo(ilp!.objectiveSeconds, 9);
    }), { numRuns: 500, seed: 20261122 });
    expect(feasible).toBeGreaterThanOrEqual(50); // at least 50 instances where a layout exists
    // the cuts alone settle many instances; the solver still answers at least 50 of them
    expect(solvers.get("cuts")).toBeGreaterThan(0);
    expect(solvers.get("javascript-lp-solver")).toBeGreaterThanOrEqual(50);
  });
});

describe("the exact fallback when the solver runs out of time (threshold algorithm)", () => {
  it("equals exhaustive search on 300 random small instances (property)", () => {
    let threshold = 0;
    fc.assert(fc.property(problemArb, (p) => {
      const exact = solveExhaustively(p);
      const fallback = solvePartition(p, 0); // no time for the solver: the threshold algorithm answers
      if (exact === undefined) {
        expect(fallback).toBeUndefined();
        return;
      }
      // (unless the cuts leave a single layout, which needs no search)
      expect(["threshold", "cuts"]).toContain(fallback?.solver);
      if (fallback?.solver === "threshold") threshold++;
      expect(fallback!.objectiveSeconds).toBeCloseTo(exact.objectiveSeconds, 6);
      expect(fallback!.layersPerStage.reduce((a, b) => a + b, 0)).toBe(p.layers);
    }), { numRuns: 300, seed: 7 });
    expect(threshold).toBeGreaterThanOrEqual(30);
  });
});
