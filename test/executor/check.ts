import { expect } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { execute, type Execution } from "../../src/executor/execute.js";
import { expectedElements, passCalls, peakActivationElements, stepSyncCalls } from "../../src/executor/measure/accounting.js";
import { costModelElements } from "../../src/executor/measure/cost-map.js";
import { buildReport } from "../../src/executor/measure/report.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { microBatchCount, resolvePlan, type PlanInput } from "../../src/spec/plan.js";
import type { ModelSpec } from "../../src/spec/types.js";
import { shapeOf } from "../helpers.js";

/** tiny-gpt, or a deeper copy of it where a plan needs more layers (interleaving 2 x 2 chunks). */
export function tinyGpt(layers = 2): ModelSpec {
  return { ...loadModel("tiny-gpt"), layers };
}

export async function runPlan(gpus: number, input: PlanInput, o: { layers?: number; steps?: number; reference?: boolean; model?: Partial<ModelSpec>; sharedHeap?: boolean } = {}): Promise<Execution> {
  const model = { ...tinyGpt(o.layers), ...o.model };
  const plan = resolvePlan(model, shapeOf("dgx-h100", gpus), { globalBatch: 4, flashAttention: false, ...input });
  return execute({ model, plan, steps: o.steps ?? 5, timeoutSeconds: 30, reference: o.reference ?? true, ...(o.sharedHeap === undefined ? {} : { sharedHeap: o.sharedHeap }) });
}

/**
 * The same plan (3 steps) with the ranks' heaps shared and with none: its collectives read the other
 * ranks' heaps in the first run and went through the slots in the second, with the same losses and
 * weights to the bit and the same bytes per purpose. The copying run with the one-rank reference where
 * `reference` (default false), for its caller to check.
 */
export async function expectHeapFormsAgree(gpus: number, input: PlanInput, o: { model?: Partial<ModelSpec>; reference?: boolean } = {}): Promise<Execution> {
  const shared = await runPlan(gpus, input, { ...o, steps: 3, reference: false });
  const copied = await runPlan(gpus, input, { ...o, steps: 3, reference: o.reference ?? false, sharedHeap: false });
  expect(shared.results.map((r) => r.heapCollectives)).toEqual(shared.results.map(() => true));
  expect(copied.results.map((r) => r.heapCollectives)).toEqual(copied.results.map(() => false));
  expect(copied.losses).toEqual(shared.losses);
  expect(copied.results.map((r) => r.weights)).toEqual(shared.results.map((r) => r.weights));
  expect(copied.results.map((r) => r.steps.map((s) => s.commBytesByPurpose))).toEqual(shared.results.map((r) => r.steps.map((s) => s.commBytesByPurpose)));
  return copied;
}

/** Per-step losses within 1e-4 relative of the one-rank run of the same seed, final weights within 1e-3. */
export function expectSameNumerics(ex: Execution): void {
  expect(ex.numerics).toBeDefined();
  expect(ex.losses).toHaveLength(ex.numerics!.referenceLosses.length);
  expect(ex.numerics!.maxRelativeError).toBeLessThan(1e-4);
  expect(ex.numerics!.maxWeightError, ex.numerics!.worstTensor).toBeLessThan(1e-3);
}

/**
 * Bytes: each rank sends exactly 4 bytes per element the executor's algorithms imply, purpose by purpose;
 * and, kind by kind, the busiest rank's elements equal the cost model's, with nothing left out. Calls: each
 * rank's tp and cp collectives per step are exactly those of its passes that the predictions cut passes at
 * (accounting.ts passCalls; the step's total, so not which pass each falls in) plus the once-per-step ones,
 * and the passes' traffic alone (StepRecord.passComm) holds all but the once-per-step ones.
 */
export function expectBytes(ex: Execution, o: { unevenDpBlocks?: boolean } = {}): void {
  const shape = shapeOf("dgx-h100", ex.workers);
  const cost = costModelElements(ex.model, shape, ex.plan);
  const workers = ex.results.filter((r) => r.steps.length > 0);
  const worst: Record<string, number> = {};
  let dpTotal = 0;
  for (const r of workers) {
    dpTotal += r.steps[0]!.comm.dp.bytes / 4;
    const expected = expectedElements(ex.model, ex.plan, r.rank);
    for (const step of r.steps) {
      const measured = step.commBytesByPurpose;
      for (const k of new Set([...Object.keys(measured), ...Object.keys(expected)])) {
        expect(measured[k] ?? 0, `rank ${r.rank} ${k}`).toBe(4 * (expected[k] ?? 0));
      }
    }
    for (const kind of ["tp", "cp", "pp", "dp", "ep"] as const) {
      worst[kind] = Math.max(worst[kind] ?? 0, r.steps[0]!.comm[kind].bytes / 4);
    }
    const pass = passCalls(ex.model, ex.plan, r.coords.pp);
    const once = stepSyncCalls(ex.plan);
    for (const kind of ["tp", "cp", "ep"] as const) {
      const calls = microBatchCount(ex.plan) * (pass[kind].forward + pass[kind].backward) + once[kind];
      for (const step of r.steps) {
        expect(step.comm[kind].calls, `rank ${r.rank} ${kind} calls`).toBe(calls);
        // The passes' share (what calibrate's wait points divide by, waits.ts waitPoint): all but the once-per-step ones.
        expect(step.passComm[kind].calls, `rank ${r.rank} ${kind} calls in passes`).toBe(calls - once[kind]);
      }
    }
  }
  // Blocks of a size the group does not divide (floor(j n / g)) give the members a share each a little off
  // the cost model's (g-1)/g of every unit: then the members' mean is the cost model's, exactly.
  const dp = o.unevenDpBlocks === true ? dpTotal / workers.length : worst.dp;
  for (const kind of ["tp", "cp", "pp", "ep"] as const) expect(worst[kind], kind).toBeCloseTo(cost[kind], 6);
  expect(dp, "dp").toBeCloseTo(cost.dp, 6);
}

/**
 * Activations kept for backward passes: exactly the tfjs accounting's peak, stage by stage; and the
 * whole peak (tf.memory() plus the float32 gradient and optimizer arrays) within 10% of its prediction.
 */
export function expectActivationMemory(ex: Execution): void {
  for (const r of ex.results.filter((x) => x.steps.length > 0)) {
    expect(r.memory.peakActivationBytes, `rank ${r.rank}`).toBe(4 * peakActivationElements(ex.model, ex.plan, r.coords.pp));
  }
  const shape = shapeOf("dgx-h100", ex.workers);
  const report = buildReport(ex, { shape, estimate: estimate(ex.model, shape, ex.plan) }, 2);
  for (const r of report.measured.ranks) {
    const ratio = r.memory.peakBytes / r.memory.predictedPeakBytes;
    expect(ratio, `rank ${r.rank} peak ${r.memory.peakBytes} predicted ${r.memory.predictedPeakBytes}`).toBeGreaterThan(0.9);
    expect(ratio, `rank ${r.rank} peak ${r.memory.peakBytes} predicted ${r.memory.predictedPeakBytes}`).toBeLessThan(1.1);
  }
}

/**
 * Model states per rank as the cost model counts them for its stage: gradients and optimizer states to the
 * byte, parameters at 4 bytes where it counts 2 (the executor's float32 weights against 16-bit ones).
 */
export function expectStateBytes(ex: Execution): void {
  const shape = shapeOf("dgx-h100", ex.workers);
  const report = buildReport(ex, { shape, estimate: estimate(ex.model, shape, ex.plan) }, 2);
  for (const r of report.measured.ranks) {
    const m = r.memory;
    expect({ parameters: m.parametersBytes, gradients: m.gradientsBytes, optimizer: m.optimizerBytes }, `rank ${r.rank}`)
      .toEqual({ parameters: 2 * m.costModel.parametersBytes, gradients: m.costModel.gradientsBytes, optimizer: m.costModel.optimizerBytes });
  }
}

/** A split as the issue asks it to be checked: the reference's numerics, every byte, the activation memory. */
export function expectFaithful(ex: Execution): void {
  expectSameNumerics(ex);
  expectBytes(ex);
  expectActivationMemory(ex);
}
