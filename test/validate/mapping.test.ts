import { describe, expect, it } from "vitest";
import { builtinNames, clusterLoader, loadModel } from "../../src/cli/catalog.js";
import { clusterFor, deepspeedAccumulation, recordCase, unevenLayers, type ValidationCase } from "../../src/validate/cases.js";
import { readMeasurements } from "../../src/validate/files.js";
import { deepspeedPipelineCommunicators } from "../../src/validate/profiles.js";
import { prepareCases, predictCase } from "../../src/validate/predict.js";
import { quickScore } from "../../src/planner/cost/estimate.js";
import type { MeasurementRecord } from "../../src/validate/records.js";

const records = readMeasurements();
const builtins = builtinNames("model").map(loadModel);
const byId = new Map(records.map((r) => [r.id, r]));

function record(id: string): MeasurementRecord {
  const r = byId.get(id);
  if (r === undefined) throw new Error(`no record ${id}`);
  return r;
}

function mapped(id: string): ValidationCase {
  const result = recordCase(record(id), builtins);
  if (!("case" in result)) throw new Error(`${id} skipped: ${result.skipped.reason}`);
  return result.case;
}

function skipReason(id: string): string {
  const result = recordCase(record(id), builtins);
  if ("case" in result) throw new Error(`${id} was not skipped`);
  return result.skipped.reason;
}

describe("published records as meshplan plans", () => {
  it("reads all 533 records of the 18 files", () => {
    expect(records).toHaveLength(533);
    expect(new Set(records.map((r) => r.source)).size).toBe(18);
  });

  it("SC'21 GPT 1.7B (r0012): Megatron 2021 knobs, hardware TFLOP/s in the 96*B*s*l*h^2 convention", () => {
    const c = mapped("r0012");
    expect(c.cluster).toBe("dgx-a100-80gb");
    expect(c.model.name).toBe("sc21-gpt-1.7b"); // the built-in model of the same shape
    expect(c.plan).toMatchObject({ tp: 1, pp: 1, dp: 32, microBatch: 16, globalBatch: 512, seqLen: 2048, recompute: "full", precision: "fp16", zero: 0, flashAttention: false });
    const m = c.measurement!;
    expect(m.kind).toBe("tflops-per-gpu");
    const [l, h, s, V] = [24, 2304, 2048, 51200];
    expect(m.flopsPerToken).toBeCloseTo(96 * l * h * h * (1 + s / (6 * h) + V / (16 * l * h)), -3);
    expect(m.tokensPerSecondPerGpu).toBeCloseTo((137e12) / m.flopsPerToken!, 6);
  });

  it("BLOOM 176B (r0204): embedding-aware stages, ZeRO-1, bf16, iteration time", () => {
    const c = mapped("r0204");
    expect(c.plan).toMatchObject({ tp: 4, pp: 12, dp: 8, microBatch: 2, globalBatch: 2048, zero: 1, precision: "bf16", recompute: "full", sequenceParallel: false });
    expect(c.plan.layersPerStage).toEqual([5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5]);
    expect(c.measurement).toMatchObject({ kind: "iteration-seconds", value: 105.22 });
    expect(c.measurement!.tokensPerSecondPerGpu).toBeCloseTo((2048 * 2048) / (105.22 * 384), 9);
  });

  it("Llama 3 405B (r1407): 126 layers on 16 stages drop one layer on the first and the last, PaLM FLOPs", () => {
    const c = mapped("r1407");
    expect(c.plan.layersPerStage).toEqual([7, ...new Array<number>(14).fill(8), 7]);
    expect(c.plan).toMatchObject({ tp: 8, pp: 16, dp: 64, cp: 1, globalBatch: 2048, seqLen: 8192 });
    // The record names the paper's interleaved schedule without a count: one layer slot per virtual stage.
    expect(c.plan).toMatchObject({ schedule: "interleaved", virtualStages: 8 });
    expect(c.assumptions.some((a) => a.startsWith("interleaved schedule, 8 virtual stages"))).toBe(true);
    expect(c.attentionKernel).toBe("flash-attention-2");
    expect(c.measurement!.compares).toContain("PaLM");
    expect(c.assumptions).toContain("micro-batch 1 (not stated)");
  });

  it("llm-foundry MPT-70b (r1000): FSDP FULL_SHARD is ZeRO-3, tokens/s per GPU", () => {
    const c = mapped("r1000");
    expect(c.cluster).toBe("dgx-h100");
    expect(c.plan).toMatchObject({ tp: 1, pp: 1, dp: 64, zero: 3, recompute: "full", precision: "bf16", microBatch: 8, flashAttention: true });
    expect(c.measurement).toMatchObject({ kind: "tokens-per-second-per-gpu", value: 1039, tokensPerSecondPerGpu: 1039 });
  });

  it("Megatron GPT-2 2020 on a DGX A100 (r0033): 40 GB GPUs, batch per data-parallel rank", () => {
    const c = mapped("r0033");
    expect(c.cluster).toBe("dgx-a100-40gb");
    expect(c.plan).toMatchObject({ microBatch: 16, globalBatch: 16, recompute: "full", precision: "fp16" });
  });

  it("recompute shares: torchtitan's selective layer checkpointing and the IBM blog's every n-th block", () => {
    expect(mapped("r1307").plan.recomputeLayersPerStage).toEqual([16]); // every 2nd of 32 layers
    // r1338: HFU 59 / MFU 51 -> 3 * (59/51 - 1) = 47% of 40 layers
    expect(mapped("r1338").plan.recomputeLayersPerStage).toEqual([19]);
  });

  it("NVIDIA recipes overlap tensor-parallel communication; fp8 where the table says so", () => {
    expect(mapped("r1362").plan).toMatchObject({ tp: 4, pp: 4, virtualStages: 20, schedule: "interleaved", precision: "fp8", tpCommOverlap: true });
  });

  it("Megatron-DeepSpeed runs its pipeline on DeepSpeed's engine; BLOOM ran on Jean Zay's Omni-Path nodes", () => {
    const bloom = mapped("r0204");
    expect(bloom.cluster).toBe("jean-zay-a100-80gb");
    expect(bloom.plan).toMatchObject({ tp: 4, pp: 12, zero: 1, ppBlockingSends: true, dpCommExposed: true });
    const mtnlg = mapped("r1411");
    expect(mtnlg.cluster).toBe("dgx-a100-80gb"); // Selene: DGX A100
    expect(mtnlg.plan).toMatchObject({ ppBlockingSends: true, dpCommExposed: true });
    // No pipeline, no pipeline engine: a BLOOM candidate on one node keeps the defaults.
    const single = mapped("r1201").plan;
    expect(single.pp).toBe(1);
    expect(single.ppBlockingSends).toBeUndefined();
    expect(single.dpCommExposed).toBeUndefined();
    // Megatron-LM's own pipeline overlaps both.
    expect(mapped("r1362").plan.ppBlockingSends).toBeUndefined();
  });

  it("BLOOM's stack holds its runtime and NCCL communicators outside the tensors, and PyTorch 1.11's allocator a cache on top; other sources keep the GPU file's", () => {
    // A first stage with tp, pp and dp: world, Megatron's tp group, DeepSpeed's slice, dp, model-parallel
    // and pipeline groups, the tied-weights group and its one pipeline neighbour.
    expect(deepspeedPipelineCommunicators({ tp: 4, pp: 12, dp: 8 })).toBe(8);
    // One node, tp only: world, tp and the model-parallel group.
    expect(deepspeedPipelineCommunicators({ tp: 8, pp: 1, dp: 1 })).toBe(3);
    expect(deepspeedPipelineCommunicators({ tp: 1, pp: 48, dp: 8 })).toBe(6); // no tp groups
    const bloom = mapped("r0204");
    expect(bloom.plan.runtimeReserveBytes).toBe(1_911_000_000 + 8 * 544_000_000);
    expect(bloom.plan.allocatorCacheShare).toBe(0.059);
    expect(bloom.assumptions.some((a) => a.includes("8 NCCL communicators") && a.includes("caching allocator holding 5.9% of the tensors"))).toBe(true);
    expect(mapped("r1201").plan.runtimeReserveBytes).toBe(1_911_000_000 + 3 * 544_000_000);
    for (const id of ["r1407", "r1362", "r1315"]) {
      expect(mapped(id).plan.runtimeReserveBytes).toBeUndefined();
      expect(mapped(id).plan.allocatorCacheShare).toBeUndefined();
    }
  });

  it("BLOOM's 206B out-of-memory row is disputed, with its evidence; a miss on it is listed apart, a right prediction on a disputed record is neither", () => {
    const c = mapped("r1306");
    expect(c.ran).toBe(false);
    expect(c.disputed).toMatch(/r1300.*ran at 67 GB.*59\.5 GiB of 79\.2/);
    for (const id of ["r1255", "r1256", "r1291", "r1292", "r1248", "r1300"]) expect(mapped(id).disputed).toBeUndefined();
    const [disputed, oom] = prepareCases([c, mapped("r1255")], clusterLoader()).prepared;
    const miss = predictCase(disputed!, quickScore);
    expect(miss.fits).toBe(true);
    expect(miss.violation).toBeUndefined();
    expect(miss.disputed).toMatch(/^ran out of memory, but predicted to fit; disputed: published out of memory/);
    const right = predictCase({ ...oom!, case: { ...oom!.case, disputed: "for the test" } }, quickScore);
    expect(right.fits).toBe(false);
    expect([right.violation, right.disputed]).toEqual([undefined, undefined]);
    // the same record undisputed would be a violation
    const { disputed: _evidence, ...undisputed } = c;
    expect(predictCase({ ...disputed!, case: undisputed }, quickScore).violation).toBe("ran out of memory, but predicted to fit");
  });

  it("BLOOM's launches block from the prequel's hang workaround on; its earlier 'Best TFLOPs' runs and other sources do not", () => {
    for (const id of ["r0204", "r0209", "r1246"]) {
      const c = mapped(id);
      expect(c.plan.launchBlocking).toBe(true);
      expect(c.assumptions.some((a) => a.includes("CUDA_LAUNCH_BLOCKING=1"))).toBe(true);
    }
    for (const id of ["r1201", "r1202", "r1411", "r0015"]) expect(mapped(id).plan.launchBlocking).toBeUndefined();
  });

  it("IBM's fms-fsdp and torchtitan rows that recompute stop early (PyTorch's non-reentrant checkpoint); rows without recomputation and other sources do not", () => {
    for (const id of ["r1342", "r1339"]) {
      const c = mapped(id);
      expect(c.plan.recomputeEarlyStop).toBe(true);
      expect(c.assumptions.some((a) => a.includes("non-reentrant checkpoint"))).toBe(true);
    }
    for (const id of ["r1309", "r1314", "r1311"]) {
      const c = mapped(id);
      expect(c.plan.recomputeEarlyStop).toBe(true);
      expect(c.assumptions.some((a) => a.includes("ptd_checkpoint_wrapper"))).toBe(true);
    }
    // Megatron and DeepSpeed re-run whole layers; IBM's r1337 and torchtitan's r1310 do not recompute.
    for (const id of ["r1337", "r1310", "r0204", "r1411"]) expect(mapped(id).plan.recomputeEarlyStop).toBeUndefined();
  });

  it("llm-foundry's re-measured (amp, DEFAULT) rows that recompute stop early; its first, torch 1.13 rows (bf16, PURE) and rows without recomputation do not", () => {
    for (const id of ["r1074", "r1002", "r1000"]) {
      const c = mapped(id);
      expect(c.plan.recomputeEarlyStop).toBe(true);
      expect(c.assumptions.some((a) => a.includes("re-measured rows"))).toBe(true);
    }
    // r1062: the A100 80GB table's 70b row kept from the first measurement; r1127: the A100 40GB table; r1011: no recomputation.
    for (const id of ["r1062", "r1127", "r1011"]) expect(mapped(id).plan.recomputeEarlyStop).toBeUndefined();
  });

  it("llm-foundry's loss is flash-attn's fused cross-entropy; torchtitan's fp8 linears keep 16-bit inputs (torchao); other rows keep the defaults", () => {
    for (const id of ["r1186", "r1002", "r1053"]) {
      const c = mapped(id);
      expect(c.plan.fusedCrossEntropy).toBe(true);
      expect(c.assumptions.some((a) => a.includes("fused_crossentropy"))).toBe(true);
    }
    for (const id of ["r1334", "r1335"]) {
      const c = mapped(id);
      expect(c.plan.precision).toBe("fp8");
      expect(c.plan.fp8Keep16BitInputs).toBe(true);
      expect(c.assumptions.some((a) => a.includes("Float8Linear"))).toBe(true);
    }
    // torchtitan's bf16 rows have no fp8 linears; NeMo's and llm-foundry's fp8 run Transformer Engine's
    for (const id of ["r1310", "r1357", "r1053"]) expect(mapped(id).plan.fp8Keep16BitInputs).toBeUndefined();
    for (const id of ["r1310", "r1357", "r0204"]) expect(mapped(id).plan.fusedCrossEntropy).toBeUndefined();
  });

  it("the FSDP stacks store each weight only as its fp32 shard (no 16-bit shard); ZeRO under Megatron and DeepSpeed keeps both", () => {
    // llm-foundry (Composer FSDP), torchtitan (FSDP2), IBM's fms-fsdp (HYBRID_SHARD over a node included)
    for (const id of ["r1002", "r1186", "r1310", "r1334", "r1336", "r1342"]) {
      const c = mapped(id);
      expect([c.plan.zero, c.plan.fp32ShardOnly]).toEqual([3, true]);
      expect(c.assumptions.some((a) => a.includes("fp32 shard"))).toBe(true);
    }
    // Llama 3's ZeRO-2, Megatron's distributed optimizer (NeMo), BLOOM's DeepSpeed ZeRO-1
    for (const id of ["r1407", "r1357", "r0204"]) expect(mapped(id).plan.fp32ShardOnly).toBeUndefined();
  });

  it("llm-foundry's optimizer step moves Composer's per-operation DecoupledAdamW and clipping traffic; other sources keep fused Adam's", () => {
    for (const id of ["r1014", "r1074"]) {
      const c = mapped(id);
      expect(c.plan.optimizerStepBytesPerParam).toBe(92);
      expect(c.assumptions.some((a) => a.includes("DecoupledAdamW"))).toBe(true);
    }
    for (const id of ["r1310", "r1337", "r0204", "r1411"]) expect(mapped(id).plan.optimizerStepBytesPerParam).toBeUndefined();
  });

  it("DeepSpeed's pipeline engine keeps stage outputs (BLOOM, MT-NLG with pp > 1); its BF16_Optimizer keeps BLOOM's bf16 gradients", () => {
    for (const id of ["r0205", "r1296", "r1411"]) expect(mapped(id).plan.ppKeepOutputs).toBe(true);
    expect(mapped("r1296").plan.keep16BitGrads).toBe(true); // bf16 (BF16 optimizer, fp32 accumulation)
    expect(mapped("r1296").assumptions.some((a) => a.includes("BF16_Optimizer"))).toBe(true);
    expect(mapped("r0205").plan.keep16BitGrads).toBeUndefined(); // fp16
    expect(mapped("r1411").plan.keep16BitGrads).toBeUndefined(); // MT-NLG: no BF16_Optimizer in 2021
    for (const id of ["r0015", "r1362", "r1231"]) expect(mapped(id).plan.ppKeepOutputs).toBeUndefined(); // Megatron-LM, NeMo, BLOOM pp 1
  });

  it("DeepSpeed's engine accumulates gradients as passes of their own: 18 bytes under BF16_Optimizer, 6 after the first fp16 micro-batch", () => {
    expect(mapped("r1296").plan.gradientAccumulationBytesPerParam).toBe(18); // BLOOM bf16
    // r0205: BLOOM fp16, global batch 2048 over dp 4 at micro-batch 1, 512 micro-batches; r1411: MT-NLG, 1920 over dp 8, 240.
    expect(record("r0205").parallel).toMatchObject({ dp: 4, micro_batch_size: 1, global_batch_size: 2048 });
    expect(mapped("r0205").plan.gradientAccumulationBytesPerParam).toBeCloseTo((6 * 511) / 512, 12);
    expect(mapped("r1411").plan).toMatchObject({ dp: 8, microBatch: 1, globalBatch: 1920 }); // micro-batch 1 assumed (not published)
    expect(mapped("r1411").plan.gradientAccumulationBytesPerParam).toBeCloseTo((6 * 239) / 240, 12);
    expect(mapped("r0205").assumptions.some((a) => a.includes("autograd adds each micro-batch's fp16 gradients"))).toBe(true);
    expect(deepspeedAccumulation(false, 1)).toBeUndefined(); // one micro-batch: nothing is added
    expect(deepspeedAccumulation(true, 1)?.bytesPerParam).toBe(18); // BF16_Optimizer adds the first one too
    // Megatron-LM, NeMo, llm-foundry (FSDP), torchtitan: fused or reduce-scattered, no pass of its own.
    for (const id of ["r0015", "r1362", "r1002", "r1334"]) expect(mapped(id).plan.gradientAccumulationBytesPerParam).toBeUndefined();
  });

  it("NeMo's SFT rows run as the launcher's SFT scripts and recipe: one layer per virtual stage, Apex's bf16 optimizer", () => {
    expect(mapped("r1378").plan).toMatchObject({ pp: 4, virtualStages: 10, schedule: "interleaved", fp32Gradients: false, optimizerStateBytes: 6 });
    expect(mapped("r1379").plan).toMatchObject({ tp: 4, pp: 4, virtualStages: 20, schedule: "interleaved", fp32Gradients: false, optimizerStateBytes: 6 });
    expect(mapped("r1379").assumptions.some((a) => a.includes("SFT scripts: one layer per virtual stage"))).toBe(true);
    expect(mapped("r1379").assumptions.some((a) => a.includes("DistributedFusedAdam in bf16"))).toBe(true);
    const single = mapped("r1377").plan; // Llama 2 7B at pp 1: no pipeline to interleave
    expect(single.virtualStages).toBe(1);
    expect(single.optimizerStateBytes).toBe(6);
    // The pre-training rows keep the plan's defaults (fp32 gradients and Adam states) and their published virtual stages.
    const pretraining = mapped("r1362").plan;
    expect(pretraining.virtualStages).toBe(20);
    expect(pretraining.fp32Gradients).toBeUndefined();
    expect(pretraining.optimizerStateBytes).toBeUndefined();
  });

  it("NeMo's Nemotron-4 340B row runs NVIDIA's config for that model: bf16 gradients and bf16 Adam moments without a master copy", () => {
    const nemotron = mapped("r1365");
    expect(nemotron.plan).toMatchObject({ fp32Gradients: false, optimizerStateBytes: 4 });
    expect(nemotron.assumptions.some((a) => a.includes("grad_sync_dtype bf16"))).toBe(true);
    // The launcher's 8B and 22B configs keep the fp32 defaults.
    for (const id of ["r1363", "r1364"]) {
      expect(mapped(id).plan.fp32Gradients).toBeUndefined();
      expect(mapped(id).plan.optimizerStateBytes).toBeUndefined();
    }
  });

  it("Megatron-DeepSpeed and 2021 Megatron-LM run the tp backward synchronously; Megatron-LM from 2022 does not", () => {
    expect(mapped("r0204").plan.tpSyncBackward).toBe(true); // BLOOM, tp 4
    expect(mapped("r1411").plan.tpSyncBackward).toBe(true); // MT-NLG
    expect(mapped("r0015").plan.tpSyncBackward).toBe(true); // SC'21, tp 8
    expect(mapped("r0044").plan.tpSyncBackward).toBeUndefined(); // Korthikanti et al. 2022
    expect(mapped("r1362").plan.tpSyncBackward).toBeUndefined(); // NeMo
  });

  it("the IBM FSDP blog: its 400 and 800 Gb/s nodes, hybrid sharding for 7B and 13B as fms-fsdp's scripts run them", () => {
    const a100 = mapped("r1336");
    expect(a100.cluster).toBe("ibm-a100-80gb-400g");
    expect(a100.plan.shardGroup).toBe(8);
    expect(a100.assumptions.join(" ")).toContain("hybrid sharding over 8 GPUs");
    const h100 = mapped("r1337");
    expect(h100.cluster).toBe("ibm-h100-800g");
    expect(h100.plan.shardGroup).toBe(8);
    expect(mapped("r1342").plan.shardGroup).toBeUndefined(); // 70B: FULL_SHARD
  });

  it("an out-of-memory record is a memory check without a throughput", () => {
    const c = mapped("r1248");
    expect(c.ran).toBe(false);
    expect(c.measurement).toBeUndefined();
  });

  it("skips what cannot be reproduced, with the reason", () => {
    expect(skipReason("r1316")).toContain("96GB");
    expect(skipReason("r1410")).toContain("up to");
    expect(skipReason("r1207")).toBe("layers not stated");
    expect(skipReason("r0022")).toContain("tensor/pipeline split not published");
    expect(skipReason("r1414")).toContain("SKU");
    expect(skipReason("r1435")).toContain("no throughput measurement");
  });

  it("maps published GPU names to built-in clusters", () => {
    expect(clusterFor("H100 80GB HBM3 (700 W)", "x").cluster).toBe("dgx-h100");
    expect(clusterFor("A100 40GB", "x").cluster).toBe("dgx-a100-40gb");
    expect(clusterFor("A100 80GB SXM4 (400 W)", "x").cluster).toBe("dgx-a100-80gb");
    expect(clusterFor("B200 (DGX-B200)", "x").cluster).toBe("dgx-b200");
    expect(clusterFor("V100 32GB (DGX-2)", "x").skip).toContain("V100");
  });

  it("uneven layer splits follow DeepSpeed's uniform partition with embedding and output as layers", () => {
    expect(unevenLayers(78, 12, 1)).toEqual([6, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 5]);
    expect(unevenLayers(72, 12, 1)).toBeUndefined(); // even: the plan's default
    expect(unevenLayers(126, 16, 8)).toEqual([7, ...new Array<number>(14).fill(8), 7]); // interleaved: 128 slots in 128 chunks
    expect(unevenLayers(126, 8, 3)).toBeUndefined(); // interleaved: 128 slots do not fill 24 chunks evenly
  });
});
