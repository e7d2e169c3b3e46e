import { describe, expect, it } from "vitest";
import { parseClusterFile, parseGpu } from "../../src/spec/hardware.js";
import { fromHuggingFaceConfig } from "../../src/spec/huggingface.js";
import { parseModel } from "../../src/spec/model.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { inputErrorOf, planFor, shapeOf } from "../helpers.js";

const good = { layers: 2, hiddenSize: 64, attentionHeads: 4, ffnHiddenSize: 256, mlp: "gelu", vocabSize: 256, seqLen: 32 };


describe("model file validation", () => {
  it("accepts a minimal model and fills the defaults", () => {
    const m = parseModel(good, "m.json", "m");
    expect(m).toMatchObject({ name: "m", kvHeads: 4, headDim: 16, norm: "layernorm", tiedEmbeddings: false });
  });

  it.each([
    [{ ...good, hiddenSize: 0 }, "hiddenSize", "out-of-range"],
    [{ ...good, layers: 2.5 }, "layers", "out-of-range"],
    [{ ...good, mlp: "relu" }, "mlp", "out-of-range"],
    [{ ...good, kvHeads: 3 }, "kvHeads", "not-divisible"],
    [{ ...good, attentionHeads: 5 }, "attentionHeads", "not-divisible"],
    [{ ...good, vocabSize: "big" }, "vocabSize", "bad-type"],
    [{ ...good, moe: { experts: 8, topK: 9 } }, "moe.topK", "out-of-range"],
    [[1, 2], "(top level)", "bad-type"],
    // sizes beyond any model are refused rather than turned into Infinity and NaN downstream
    [{ ...good, hiddenSize: 1e300 }, "hiddenSize", "out-of-range"],
    [{ ...good, layers: 100000 }, "layers", "out-of-range"],
    [{ ...good, vocabSize: 2 ** 24 + 1 }, "vocabSize", "out-of-range"],
  ])("rejects %j at %s", (json, field, code) => {
    const e = inputErrorOf(() => parseModel(json, "bad.json", "bad"));
    expect(e.field).toBe(field);
    expect(e.code).toBe(code);
    expect(e.message).toContain("bad.json");
    expect(e.message).toContain("valid:");
  });

  it("rejects an unknown Hugging Face model_type, naming the ones it knows", () => {
    const e = inputErrorOf(() => fromHuggingFaceConfig({ model_type: "t5" }, "config.json", "x"));
    expect(e.message).toContain("model_type");
    expect(e.message).toContain("llama, mistral, mixtral, qwen2, gpt2, gpt_neox");
  });

  it("rejects a Hugging Face config whose key/value heads do not divide its heads, naming the field", () => {
    const config = { model_type: "llama", hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 5, num_hidden_layers: 2, intermediate_size: 11008, vocab_size: 32000, max_position_embeddings: 4096 };
    const e = inputErrorOf(() => fromHuggingFaceConfig(config, "config.json", "x"));
    expect(e.field).toBe("num_key_value_heads");
    expect(e.message).toContain("a divisor of num_attention_heads (32)");
    expect(fromHuggingFaceConfig({ ...config, num_key_value_heads: 8 }, "config.json", "x").kvHeads).toBe(8);
  });

  it("rejects a GPU without any peak", () => {
    const e = inputErrorOf(() => parseGpu({ memoryBytes: 1, hbmBytesPerSecond: 1, peakFlopsPerSecond: {}, nvlinkBytesPerSecond: 0, efficiency: { matmulMax: 0.8, matmulOverheadSeconds: 0, attentionMax: 0.5, memoryBandwidth: 0.9 }, runtimeReserveBytes: 0 }, "g.json", "g"));
    expect(e.field).toBe("peakFlopsPerSecond");
  });

  it("reads the optional commOverlapSlowdown as a fraction, and rejects one outside [0, 1] naming it", () => {
    const gpu = (efficiency: Record<string, number>) => ({ memoryBytes: 1, hbmBytesPerSecond: 1, peakFlopsPerSecond: { bf16: 1 }, nvlinkBytesPerSecond: 0, efficiency, runtimeReserveBytes: 0 });
    const base = { matmulMax: 0.8, matmulOverheadSeconds: 0, attentionMax: 0.5, memoryBandwidth: 0.9 };
    expect(parseGpu(gpu({ ...base, commOverlapSlowdown: 0.2 }), "g.json", "g").efficiency.commOverlapSlowdown).toBe(0.2);
    expect(parseGpu(gpu(base), "g.json", "g").efficiency).not.toHaveProperty("commOverlapSlowdown");
    const e = inputErrorOf(() => parseGpu(gpu({ ...base, commOverlapSlowdown: 1.5 }), "g.json", "g"));
    expect(e.field).toMatch(/commOverlapSlowdown/);
    expect(e.value).toBe(1.5);
  });

  it("rejects a runtime reserve that is not below the GPU's memory, naming the field and the file", () => {
    const efficiency = { matmulMax: 0.8, matmulOverheadSeconds: 0, attentionMax: 0.5, memoryBandwidth: 0.9 };
    const gpu = (runtimeReserveBytes: number) => ({ memoryBytes: 80e9, hbmBytesPerSecond: 1, peakFlopsPerSecond: { bf16: 1 }, nvlinkBytesPerSecond: 0, efficiency, runtimeReserveBytes });
    expect(parseGpu(gpu(1.5e9), "g.json", "g").runtimeReserveBytes).toBe(1.5e9);
    const e = inputErrorOf(() => parseGpu(gpu(1e12), "g.json", "g"));
    expect(e.field).toBe("runtimeReserveBytes");
    expect(e.file).toBe("g.json");
    expect(e.message).toContain("below memoryBytes (80000000000)");
  });

  it("reads the optional per-group cap on an inter-node link, and rejects one that is not positive or sits on the intra-node link", () => {
    const link = { link: "net", bytesPerSecondPerGpu: 6.25e9, latencySeconds: 1e-5, busBandwidthEfficiency: 0.4 };
    const cluster = (intraNode: object, interNode: object) => ({ gpu: "a100-sxm-80gb", gpusPerNode: 8, intraNode, interNode });
    expect(parseClusterFile(cluster(link, { ...link, maxBytesPerSecondPerGroup: 12.5e9 }), "c.json", "c").interNode.maxBytesPerSecondPerGroup).toBe(12.5e9);
    expect(parseClusterFile(cluster(link, link), "c.json", "c").interNode).not.toHaveProperty("maxBytesPerSecondPerGroup");
    const negative = inputErrorOf(() => parseClusterFile(cluster(link, { ...link, maxBytesPerSecondPerGroup: -1 }), "c.json", "c"));
    expect(negative.field).toBe("interNode.maxBytesPerSecondPerGroup");
    expect(negative.value).toBe(-1);
    const inside = inputErrorOf(() => parseClusterFile(cluster({ ...link, maxBytesPerSecondPerGroup: 1e9 }, link), "c.json", "c"));
    expect(inside.field).toBe("intraNode.maxBytesPerSecondPerGroup");
    expect(inside.message).toContain("interNode only");
  });
});

describe("plan resolution", () => {
  const shape = shapeOf("dgx-h100", 64);

  it("fills dp from the GPU count and defaults the rest", () => {
    const { plan } = planFor("llama3-70b", shape, { tp: 8, pp: 4 });
    expect(plan).toMatchObject({ dp: 2, cp: 1, ep: 1, sequenceParallel: true, microBatch: 1, schedule: "1f1b", zero: 0, recompute: "none", precision: "bf16", layersPerStage: [20, 20, 20, 20] });
  });

  it("accepts an uneven layer split and per-stage recompute counts", () => {
    const { plan } = planFor("llama3-70b", shape, { tp: 8, pp: 4, layersPerStage: [18, 21, 21, 20], recomputeLayersPerStage: [4, 0, 0, 0] });
    expect(plan.layersPerStage).toEqual([18, 21, 21, 20]);
    expect(plan.recomputeLayersPerStage).toEqual([4, 0, 0, 0]);
  });

  it("interleaved: the first and last stage may hold one layer less than a multiple of the virtual stages", () => {
    // Llama 3 405B: 126 layers + embedding + output = 128 slots over 16 stages of 8 chunks (Dubey et al. 2024, 3.3.2).
    const big = shapeOf("dgx-h100", 16384);
    const layersPerStage = [7, ...new Array<number>(14).fill(8), 7];
    const { plan } = planFor("llama3-405b", big, { tp: 8, pp: 16, virtualStages: 8, globalBatch: 2048, layersPerStage });
    expect(plan.layersPerStage).toEqual(layersPerStage);
    const middle = inputErrorOf(() => planFor("llama3-405b", big, { tp: 8, pp: 16, virtualStages: 8, globalBatch: 2048, layersPerStage: [8, 7, ...new Array<number>(14).fill(8)] }));
    expect(middle.field).toBe("layersPerStage");
    // without a layout, the error names the one that works
    const none = inputErrorOf(() => planFor("llama3-405b", big, { tp: 8, pp: 16, virtualStages: 8, globalBatch: 2048 }));
    expect(none.field).toBe("virtualStages"); // with virtual stages, their count is what to change
    expect(none.message).toContain(`e.g. ${layersPerStage.join(",")}`);
    expect(none.message).toContain("none splits 126 layers evenly over pp(16)");
    const twoLess = [6, ...new Array<number>(14).fill(8), 8];
    expect(inputErrorOf(() => planFor("llama3-405b", big, { tp: 8, pp: 16, virtualStages: 8, globalBatch: 2048, layersPerStage: twoLess })).field).toBe("layersPerStage");
    // Where pp divides the layers, no interleaving (1) is valid: not "none" (tiny-gpt, 2 layers on pp 2).
    const tiny = inputErrorOf(() => planFor("tiny-gpt", shapeOf("dgx-h100", 2), { pp: 2, virtualStages: 2 }));
    expect(tiny.valid).toBe("1 (no interleaving: no virtualStages of 2 or more splits 2 layers evenly over pp(2)), or give layersPerStage");
    expect(tiny.message).toContain("e.g. 1,1");
  });

  it("rounds a default global batch to whole rounds of pp under the interleaved schedule", () => {
    // tiny-gpt's 8 over pp 3: 8 micro-batches are not a multiple of 3, and the user gave no batch to change.
    const model = { ...parseModel(JSON.parse('{"hiddenSize":64,"attentionHeads":4,"ffnHiddenSize":256,"mlp":"gelu","vocabSize":256,"seqLen":32,"layers":6,"globalBatch":8}'), "six.json", "six") };
    expect(resolvePlan(model, shapeOf("dgx-h100", 3), { pp: 3, virtualStages: 2 }).globalBatch).toBe(9);
    expect(resolvePlan(model, shapeOf("dgx-h100", 3), { pp: 3 }).globalBatch).toBe(8);
  });

  it.each([
    [{ tp: 8, pp: 4, layersPerStage: [20, 20, 20] }, "layersPerStage"],
    [{ tp: 8, pp: 4, layersPerStage: [20, 20, 20, 21] }, "layersPerStage"],
    [{ tp: 8, pp: 4, recomputeLayersPerStage: [30, 0, 0, 0] }, "recomputeLayersPerStage"],
    [{ tp: 8, pp: 4, virtualStages: 2, schedule: "1f1b" as const }, "virtualStages"],
    [{ tp: 8, pp: 4, schedule: "interleaved" as const }, "virtualStages"],
    [{ ep: 2 }, "ep"],
    [{ microBatch: 3, globalBatch: 512 }, "globalBatch"],
    [{ zero: 1, parameterServers: 2 }, "zero"],
    [{ tp: 2, parameterServers: 2 }, "parameterServers"],
    [{ asynchronous: true }, "asynchronous"],
    [{ staleness: 2 }, "staleness"],
    [{ precision: "fp32" as const }, "precision"],
  ])("rejects %j at %s", (input, field) => {
    const e = inputErrorOf(() => planFor("llama3-70b", shape, input));
    expect(e.field).toBe(field);
    expect(e.message).toContain("valid:");
  });

  it("refuses what it would otherwise drop: a pipeline schedule with one stage, tensor-parallel knobs with tp 1, an asynchronous bound of 0", () => {
    const model = planFor("llama3-8b", shapeOf("dgx-h100", 8), {}).model;
    const shape8 = shapeOf("dgx-h100", 8);
    for (const schedule of ["gpipe", "zb-h1", "naive"] as const) {
      const e = inputErrorOf(() => resolvePlan(model, shape8, { schedule, zero: 2 }));
      expect(e.field).toBe("schedule");
      expect(e.valid).toBe("1f1b with pp 1, or pp >= 2");
    }
    expect(resolvePlan(model, shape8, { schedule: "1f1b" }).schedule).toBe("1f1b");
    expect(resolvePlan(model, shape8, { schedule: "gpipe", pp: 2 }).schedule).toBe("gpipe");
    // interleaved with one stage blames the stage count, not the virtual stages given
    const e = inputErrorOf(() => resolvePlan(model, shape8, { tp: 8, schedule: "interleaved", virtualStages: 2 }));
    expect([e.field, e.valid]).toEqual(["pp", "2 or more with the interleaved schedule"]);
    for (const key of ["sequenceParallel", "tpCommOverlap", "tpSyncBackward"] as const) {
      const t = inputErrorOf(() => resolvePlan(model, shape8, { tp: 1, [key]: true }));
      expect([t.field, t.valid]).toEqual([key, "false (or left out) with tp 1"]);
      expect(resolvePlan(model, shape8, { tp: 1, [key]: false }).tp).toBe(1);
    }
    const s = inputErrorOf(() => resolvePlan(model, shape8, { parameterServers: 2, asynchronous: true, staleness: 0 }));
    expect([s.field, s.valid]).toEqual(["staleness", "an integer >= 1 with --async"]);
  });

  it("a learned position table bounds the sequence: longer is refused, shorter and rotary models are not", () => {
    const shape8 = shapeOf("dgx-h100", 8);
    const gpt3 = planFor("gpt3-175b", shape8, {}).model;
    expect(gpt3.positionEmbedding).toBe("learned");
    const e = inputErrorOf(() => resolvePlan(gpt3, shape8, { seqLen: 2 * gpt3.seqLen }));
    expect([e.field, e.value, e.valid]).toEqual(["seqLen", 2 * gpt3.seqLen, `at most ${gpt3.seqLen}`]);
    expect(resolvePlan(gpt3, shape8, { seqLen: gpt3.seqLen / 2 }).seqLen).toBe(gpt3.seqLen / 2);
    const llama = planFor("llama3-8b", shape8, {}).model;
    expect(resolvePlan(llama, shape8, { seqLen: 4 * llama.seqLen }).seqLen).toBe(4 * llama.seqLen);
  });

  it("fp8 needs a GPU with fp8 tensor cores", () => {
    const a100 = shapeOf("dgx-a100-80gb", 8);
    const e = inputErrorOf(() => resolvePlan(planFor("llama3-8b", a100, {}).model, a100, { precision: "fp8" }));
    expect(e.message).toContain("a100-sxm-80gb has no fp8");
    expect(e.valid).toBe("bf16, fp16");
  });
});
