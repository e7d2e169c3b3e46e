import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/cli/catalog.js";
import { headTimes, layerTimes, embeddingTimes } from "../../src/planner/cost/compute.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { simulateInput } from "../../src/simulator/simulate.js";
import { OpKind, Stream, type SimInput, type Timeline } from "../../src/simulator/types.js";
import { resolvePlan } from "../../src/spec/plan.js";
import type { ClusterShape, GpuSpec } from "../../src/spec/types.js";
import { shapeOf } from "../helpers.js";
import { stage, uniform } from "./fixtures.js";

/** Seconds of each compute pass of `rank`, by "F0", "B1", "W0" (kind and chunk), in program order. */
function passes(t: Timeline, rank: number): Map<string, number[]> {
  const o = t.ops;
  const out = new Map<string, number[]>();
  const letter = { [OpKind.forward]: "F", [OpKind.backward]: "B", [OpKind.weight]: "W" } as Record<number, string>;
  for (let i = 0; i < o.size; i++) {
    if (o.rank[i] !== rank || o.stream[i] !== Stream.compute || letter[o.kind[i]!] === undefined) continue;
    const key = `${letter[o.kind[i]!]}${o.chunk[i]}`;
    out.set(key, [...(out.get(key) ?? []), o.endSeconds[i]! - o.startSeconds[i]!]);
  }
  return out;
}

describe("a stage's chunks: the model's ends in their own chunk, not 1/v of the stage", () => {
  it("gives ZB-V's first stage the embedding in its first chunk and the output layer in its second; the stage's totals stay", () => {
    // stage 0: 4 s of forward in all, 1 of it the embedding (chunk 0) and 2 the head (chunk 1)
    const ends = [
      { chunk: 0, forwardSeconds: 1, backwardInputSeconds: 0, backwardWeightSeconds: 0.5 },
      { chunk: 1, forwardSeconds: 2, backwardInputSeconds: 1, backwardWeightSeconds: 1 },
    ];
    const input: SimInput = { ...uniform("zb-v", 2, 4, 2), stages: [stage({ f: 5, b: 3, w: 3.5, ends }), stage({ f: 2, b: 2, w: 2 })] };
    const t = simulateInput(input);
    const s0 = passes(t, 0);
    // the layers' part of each pass, halved over the chunks, plus the chunk's own ends
    expect(s0.get("F0")).toEqual(Array(4).fill((5 - 3) / 2 + 1));
    expect(s0.get("F1")).toEqual(Array(4).fill((5 - 3) / 2 + 2));
    expect(s0.get("B0")).toEqual(Array(4).fill((3 - 1) / 2));
    expect(s0.get("B1")).toEqual(Array(4).fill((3 - 1) / 2 + 1));
    expect(s0.get("W0")).toEqual(Array(4).fill((3.5 - 1.5) / 2 + 0.5));
    expect(s0.get("W1")).toEqual(Array(4).fill((3.5 - 1.5) / 2 + 1));
    const sum = (xs: number[] | undefined) => (xs ?? []).reduce((a, x) => a + x, 0);
    expect(sum(s0.get("F0")) + sum(s0.get("F1"))).toBeCloseTo(4 * 5, 12);
    // a stage without ends: 1/v each
    expect(passes(t, 1).get("F1")).toEqual(Array(4).fill(1));
  });

  it("puts a chunk's ends in its backward when the schedule does not split it (1F1B: one chunk)", () => {
    const ends = [{ chunk: 0, forwardSeconds: 1, backwardInputSeconds: 0.25, backwardWeightSeconds: 0.5 }];
    const t = simulateInput({ ...uniform("1f1b", 2, 2), stages: [stage({ f: 3, b: 2, w: 1, ends }), stage()] });
    expect(passes(t, 0).get("F0")).toEqual([3, 3]);
    expect(passes(t, 0).get("B0")).toEqual([3, 3]);
  });

  it("takes the ends from the cost model: the embedding on virtual stage 0's chunk, the head on the last one's", () => {
    const model = loadModel("llama3-8b");
    const shape = shapeOf("dgx-h100", 16);
    const interleaved = resolvePlan(model, shape, { pp: 4, tp: 4, virtualStages: 2, schedule: "interleaved", globalBatch: 64, seqLen: 4096 });
    const zbv = resolvePlan(model, shape, { pp: 4, tp: 4, schedule: "zb-v", globalBatch: 64, seqLen: 4096 });
    const head = headTimes(model, shape.spec.gpu, interleaved);
    const embedding = embeddingTimes(model, shape.spec.gpu, interleaved);
    const chunksOf = (plan: typeof zbv) => planCosts(model, shape, plan).stages.map((s) => s.ends.map((e) => e.chunk));
    expect(chunksOf(interleaved)).toEqual([[0], [], [], [1]]);
    expect(chunksOf(zbv)).toEqual([[0, 1], [], [], []]);
    const first = planCosts(model, shape, zbv).stages[0]!.ends;
    expect(first[0]!.forwardSeconds).toBeCloseTo(embedding.forwardSeconds, 15);
    expect(first[0]!.backwardWeightSeconds).toBeCloseTo(embedding.backwardSeconds, 15);
    expect(first[1]!.forwardSeconds).toBeCloseTo(head.forwardSeconds, 15);
    expect(first[1]!.backwardInputSeconds + first[1]!.backwardWeightSeconds).toBeCloseTo(head.backwardSeconds, 15);
  });
});

describe("new weight tensors' first use (the executor's profile: XNNPACK packs each new weight)", () => {
  const model = loadModel("tiny-gpt");
  const base = shapeOf("dgx-h100", 8);
  const PER_PARAM = 5e-9;
  const withFirstUse = (perParam: number | undefined): ClusterShape => {
    const gpu: GpuSpec = { ...base.spec.gpu, efficiency: { ...base.spec.gpu.efficiency, ...(perParam === undefined ? {} : { weightFirstUseSecondsPerParam: perParam }) } };
    return { ...base, spec: { ...base.spec, gpu } };
  };
  const h = model.hiddenSize;
  // tiny-gpt: QKV h x 3h, projection h x h, MLP h x 4h and 4h x h; the head h x V
  const layerWeights = 3 * h * h + h * h + 2 * 4 * h * h;
  const headWeights = h * model.vocabSize;

  it("prices a layer's and the head's GEMM weights at the GPU's seconds per weight, and nothing where it has none", () => {
    const plan = resolvePlan(model, withFirstUse(PER_PARAM), { pp: 1, globalBatch: 8 });
    expect(layerTimes(model, withFirstUse(PER_PARAM).spec.gpu, plan).firstUseSeconds).toBeCloseTo(PER_PARAM * layerWeights, 15);
    expect(headTimes(model, withFirstUse(PER_PARAM).spec.gpu, plan).firstUseSeconds).toBeCloseTo(PER_PARAM * headWeights, 15);
    expect(layerTimes(model, withFirstUse(undefined).spec.gpu, plan).firstUseSeconds).toBe(0);
  });

  it("charges each chunk's first forward of a step once, or every forward under ZeRO 3", () => {
    const shape = withFirstUse(PER_PARAM);
    const one = resolvePlan(model, { ...shape, gpus: 1 }, { pp: 1, globalBatch: 8, schedule: "1f1b" });
    const once = planCosts(model, shape, one).stages[0]!;
    expect(once.firstForwardSeconds).toHaveLength(1);
    expect(once.firstForwardSeconds[0]).toBeCloseTo(PER_PARAM * (2 * layerWeights + headWeights), 15);
    const zero3 = resolvePlan(model, shapeOf("dgx-h100", 2), { dp: 2, zero: 3, globalBatch: 8 });
    const shape3 = { ...withFirstUse(PER_PARAM), gpus: 2 };
    const every = planCosts(model, shape3, zero3).stages[0]!;
    const without = planCosts(model, { ...withFirstUse(undefined), gpus: 2 }, zero3).stages[0]!;
    expect(every.firstForwardSeconds).toEqual([0]);
    expect(every.forwardSeconds - without.forwardSeconds).toBeCloseTo(PER_PARAM * (2 * layerWeights + headWeights), 12);
  });

  it("splits it over ZB-V's chunks by their layers, the head's with the second chunk of the first stage", () => {
    const tiny4 = { ...model, layers: 4 };
    const shape = { ...withFirstUse(PER_PARAM), gpus: 2 };
    const plan = resolvePlan(tiny4, shape, { pp: 2, globalBatch: 8, schedule: "zb-v" });
    const [s0, s1] = planCosts(tiny4, shape, plan).stages;
    expect(s0!.firstForwardSeconds[0]).toBeCloseTo(PER_PARAM * layerWeights, 15);
    expect(s0!.firstForwardSeconds[1]).toBeCloseTo(PER_PARAM * (layerWeights + headWeights), 15);
    expect(s1!.firstForwardSeconds).toEqual([PER_PARAM * layerWeights, PER_PARAM * layerWeights].map((x) => expect.closeTo(x, 15)));
  });

  it("lengthens the first forward of each chunk in the simulated step, and no other pass", () => {
    const input: SimInput = { ...uniform("zb-v", 2, 4, 2), stages: [stage({ firstForwardSeconds: [0.25, 0.5] }), stage()] };
    const plain = simulateInput(uniform("zb-v", 2, 4, 2));
    const t = simulateInput(input);
    const f = passes(t, 0);
    expect(f.get("F0")).toEqual([0.75, 0.5, 0.5, 0.5]);
    expect(f.get("F1")).toEqual([1, 0.5, 0.5, 0.5]);
    expect(f.get("B0")).toEqual(passes(plain, 0).get("B0"));
    expect(t.stepSeconds).toBeGreaterThan(plain.stepSeconds);
  });
});
