import { describe, expect, it } from "vitest";
import { estimate } from "../../src/planner/cost/estimate.js";
import { BLOCKING_LAUNCH_SECONDS_PER_LAYER } from "../../src/planner/cost/launch.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { simulate } from "../../src/simulator/simulate.js";
import { planFor, relErr, shapeOf } from "../helpers.js";

/** Blocking kernel launches (plan.launchBlocking, CUDA_LAUNCH_BLOCKING=1): host time per layer and micro-batch. */
const shape = shapeOf("jean-zay-a100-80gb", 64);
const input = {
  tp: 8, pp: 8, dp: 1, microBatch: 1, globalBatch: 512, zero: 1, recompute: "full", flashAttention: false, precision: "fp16",
  sequenceParallel: false, schedule: "1f1b", ppBlockingSends: true, dpCommExposed: true,
} as const;

/** A stage's compute per micro-batch: every pass the launches add to. */
const perMicroBatch = (s: ReturnType<typeof planCosts>["stages"][number]) => s.forwardSeconds + s.backwardInputSeconds + s.backwardWeightSeconds + s.recomputeSeconds;

describe("blocking kernel launches", () => {
  it("add the per-layer host time to every stage's passes, a quarter of it to the recomputation", () => {
    const off = planFor("gpt3-175b", shape, input);
    const on = planFor("gpt3-175b", shape, { ...input, launchBlocking: true });
    expect(on.plan.launchBlocking).toBe(true);
    expect(off.plan.launchBlocking).toBeUndefined();
    const a = planCosts(off.model, shape, off.plan).stages;
    const b = planCosts(on.model, shape, on.plan).stages;
    for (let i = 0; i < a.length; i++) {
      const layers = on.plan.layersPerStage[i]!;
      expect(perMicroBatch(b[i]!) - perMicroBatch(a[i]!)).toBeCloseTo(layers * BLOCKING_LAUNCH_SECONDS_PER_LAYER, 9);
      expect(b[i]!.recomputeSeconds - a[i]!.recomputeSeconds).toBeCloseTo(layers * BLOCKING_LAUNCH_SECONDS_PER_LAYER / 4, 9);
    }
  });

  it("without recomputation the layer launches no recomputed forward: three quarters of the time", () => {
    const none = { ...input, recompute: "none" } as const;
    const off = planFor("gpt3-175b", shape, none);
    const on = planFor("gpt3-175b", shape, { ...none, launchBlocking: true });
    const a = planCosts(off.model, shape, off.plan).stages[0]!;
    const b = planCosts(on.model, shape, on.plan).stages[0]!;
    expect(perMicroBatch(b) - perMicroBatch(a)).toBeCloseTo(0.75 * on.plan.layersPerStage[0]! * BLOCKING_LAUNCH_SECONDS_PER_LAYER, 9);
  });

  it("lengthen the step by the stage passes on its critical path, as the constant's derivation assumes", () => {
    // The derivation divides the measured difference by m + pp - 1 stage passes of the stage's layers
    // (DeepSpeed's pipeline, blocking sends): the cost model must charge the same back.
    const off = planFor("gpt3-175b", shape, input);
    const on = planFor("gpt3-175b", shape, { ...input, launchBlocking: true });
    const added = estimate(on.model, shape, on.plan).time.stepSeconds - estimate(off.model, shape, off.plan).time.stepSeconds;
    const passes = input.globalBatch / input.microBatch + input.pp - 1;
    expect(relErr(added, passes * on.plan.layersPerStage[0]! * BLOCKING_LAUNCH_SECONDS_PER_LAYER)).toBeLessThan(0.02);
  });

  it("the simulator plays it as the cost model prices it (within 1.5%)", () => {
    const { model, plan } = planFor("gpt3-175b", shape, { ...input, launchBlocking: true });
    expect(relErr(simulate(model, shape, plan).estimate.time.stepSeconds, estimate(model, shape, plan).time.stepSeconds)).toBeLessThan(0.015);
  });
});
