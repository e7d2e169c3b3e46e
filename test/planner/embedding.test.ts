import { describe, expect, it } from "vitest";
import { embeddingTimes } from "../../src/planner/cost/compute.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { planFor, shapeOf } from "../helpers.js";

// Llama 3 8B as built in (its Hugging Face config.json: vocab_size 128256, hidden_size 4096).
const VOCAB = 128256;
const HIDDEN = 4096;

describe("the input embedding's cost on the first stage", () => {
  const h100 = shapeOf("dgx-h100", 8);
  const rate = h100.spec.gpu.hbmBytesPerSecond * h100.spec.gpu.efficiency.memoryBandwidth;

  it("backward: the dense table gradient (2 bytes written) added into the fp32 accumulated gradient (2 + 4 + 4)", () => {
    const { model, plan } = planFor("llama3-8b", h100, { microBatch: 1 });
    expect(model.vocabSize).toBe(VOCAB);
    expect(plan.fp32Gradients).toBe(true);
    const rows = plan.seqLen * HIDDEN * 2;
    const expected = (rows + VOCAB * HIDDEN * (2 + 2 + 2 * 4)) / rate;
    expect(embeddingTimes(model, h100.spec.gpu, plan).backwardSeconds).toBeCloseTo(expected, 12);
    // rotary positions: the forward is the lookup's read and write of its rows only
    expect(embeddingTimes(model, h100.spec.gpu, plan).forwardSeconds).toBeCloseTo((2 * rows) / rate, 12);
  });

  it("tensor parallel splits the table over the vocabulary", () => {
    const one = planFor("llama3-8b", h100, { microBatch: 1 });
    const tp8 = planFor("llama3-8b", h100, { tp: 8, microBatch: 1 });
    const table = (p: typeof one) => embeddingTimes(p.model, h100.spec.gpu, p.plan).backwardSeconds - (p.plan.seqLen * HIDDEN * 2) / rate;
    expect(table(tp8)).toBeCloseTo(table(one) / 8, 12);
  });

  it("is charged to the first stage only, as a weight gradient", () => {
    const shape = shapeOf("dgx-h100", 16);
    const { model, plan } = planFor("llama3-8b", shape, { pp: 4, microBatch: 1 });
    const e = embeddingTimes(model, shape.spec.gpu, plan);
    // Without the data-parallel contention, which differs between the stages with their gradients' sizes.
    const gpu = { ...shape.spec.gpu, efficiency: { ...shape.spec.gpu.efficiency, commOverlapSlowdown: 0 } };
    const [first, second] = planCosts(model, { ...shape, spec: { ...shape.spec, gpu } }, plan).stages;
    expect(first!.forwardSeconds - second!.forwardSeconds).toBeCloseTo(e.forwardSeconds, 12);
    expect(first!.backwardWeightSeconds - second!.backwardWeightSeconds).toBeCloseTo(e.backwardSeconds, 12);
    expect(first!.backwardInputSeconds).toBeCloseTo(second!.backwardInputSeconds, 12);
  });
});
