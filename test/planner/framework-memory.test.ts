import { describe, expect, it } from "vitest";
import { frameworkFlags } from "../../src/cli/format.js";
import { validateForExecutor } from "../../src/executor/validate.js";
import { searchPlans } from "../../src/planner/search/search.js";
import { memoryTotal } from "../../src/ui/bars.js";
import { estimate, stageMemory } from "../../src/planner/cost/estimate.js";
import { inFlightMicroBatches } from "../../src/planner/cost/activations.js";
import { gradientCastPeak, lossBytes, stageActivationBytes, stagePerMicroBatchBytes, totalBytes } from "../../src/planner/cost/memory.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { InputError } from "../../src/spec/errors.js";
import type { PlanInput } from "../../src/spec/plan.js";
import { inputErrorOf, planFor, shapeOf } from "../helpers.js";

/**
 * Memory that depends on how a framework runs the split rather than on the split: the optimizer step's
 * fp32 gradient copy under 16-bit gradients, DeepSpeed's kept stage outputs and its BF16_Optimizer's kept
 * 16-bit gradients (src/planner/cost/memory.ts).
 */
const shape = shapeOf("dgx-a100-80gb", 8);

function rejection(input: PlanInput): InputError {
  return inputErrorOf(() => planFor("llama2-7b", shape, input));
}

describe("the optimizer step's fp32 copy of 16-bit gradients", () => {
  // 512 tokens with every layer recomputed: the activations are far smaller than the copy.
  const small = { tp: 8, pp: 1, microBatch: 1, globalBatch: 8, seqLen: 512, recompute: "full", zero: 0 } as const;

  it("is the peak of an fp16 stage with few activations: states, the rest and 4 bytes per parameter", () => {
    const { model, plan } = planFor("llama2-7b", shape, { ...small, precision: "fp16" });
    const costs = planCosts(model, shape, plan);
    const params = costs.stages[0]!.params;
    expect(costs.stages[0]!.optimizerStepBytes).toBe(4 * params);
    const m = estimate(model, shape, plan).memory;
    expect(m.breakdown.activationsBytes).toBe(0);
    expect(m.atOptimizerStep).toBe(true);
    expect(memoryTotal(estimate(model, shape, plan))).toMatch(/GiB \(step peak\)$/); // the explorer's memory bar
    expect(m.breakdown.gradientsBytes).toBe((2 + 4) * params);
    expect(m.peakBytesPerGpu).toBe(totalBytes(m.breakdown));
    expect(m.peakBytesPerGpu).toBe((2 + 2 + 12 + 4) * params + (costs.otherTensorBytes + costs.reserveBytes));
  });

  it("copies only the optimizer's shard under ZeRO-1", () => {
    const { model, plan } = planFor("llama2-7b", shape, { ...small, tp: 1, zero: 1, precision: "fp16", globalBatch: 8 });
    const s = planCosts(model, shape, plan).stages[0]!;
    expect(s.optimizerStepBytes).toBeCloseTo((4 * s.params) / 8, 0);
  });

  it("is not made with fp32 gradients (bf16's default), which the optimizer reads as they are", () => {
    const { model, plan } = planFor("llama2-7b", shape, { ...small, precision: "bf16" });
    const costs = planCosts(model, shape, plan);
    expect(costs.stages[0]!.optimizerStepBytes).toBe(0);
    expect(stageMemory(model, plan, costs, 0).activationsBytes).toBeGreaterThan(0);
  });

  it("gives way to the backward's peak when the activations are larger", () => {
    const { model, plan } = planFor("llama2-7b", shape, { ...small, precision: "fp16", seqLen: 4096, microBatch: 8, globalBatch: 8, recompute: "none" });
    const costs = planCosts(model, shape, plan);
    const m = stageMemory(model, plan, costs, 0);
    expect(m.activationsBytes).toBeGreaterThan(costs.stages[0]!.optimizerStepBytes);
    expect(estimate(model, shape, plan).memory.atOptimizerStep).toBeUndefined();
    expect(m.gradientsBytes).toBe(2 * costs.stages[0]!.params);
  });
});

describe("DeepSpeed's BF16_Optimizer keeps the 16-bit gradients (keep16BitGrads)", () => {
  const base = { tp: 1, pp: 1, zero: 1, precision: "bf16", microBatch: 1, globalBatch: 8 } as const;

  it("adds 2 bytes per parameter on the GPU to the gradients, nothing else", () => {
    const off = planFor("llama2-7b", shape, base);
    const on = planFor("llama2-7b", shape, { ...base, keep16BitGrads: true });
    const a = planCosts(off.model, shape, off.plan);
    const b = planCosts(on.model, shape, on.plan);
    expect(b.stages[0]!.states.gradientsBytes - a.stages[0]!.states.gradientsBytes).toBe(2 * a.stages[0]!.params);
    expect(b.stages[0]!.states.optimizerBytes).toBe(a.stages[0]!.states.optimizerBytes);
    expect(estimate(on.model, shape, on.plan).time.stepSeconds).toBe(estimate(off.model, shape, off.plan).time.stepSeconds);
    expect(frameworkFlags(on.plan)).toContain("--keep-16bit-grads");
  });

  it("peaks, after each backward, with an fp32 copy of the largest gradient while one micro-batch fewer is in flight", () => {
    // Short sequences and full recomputation keep the activations small, so the cast sets the peak.
    const input = { ...base, tp: 2, pp: 2, globalBatch: 64, seqLen: 256, recompute: "full" } as const;
    const on = planFor("llama2-7b", shape, { ...input, keep16BitGrads: true });
    const off = planFor("llama2-7b", shape, input);
    const costs = planCosts(on.model, shape, on.plan);
    const m = on.model;
    for (const stage of [0, 1]) {
      const cast = gradientCastPeak(m, on.plan, stage, costs.microBatches, costs.activations)!;
      // The embedding (first stage) and the untied output layer (last) are each vocab/tp x h: the largest weight.
      expect(cast.castBytes).toBe((4 * m.vocabSize * m.hiddenSize) / 2);
      const perMicroBatch = stagePerMicroBatchBytes(m, on.plan, stage, costs.activations);
      expect(cast.activationsBytes).toBeCloseTo((inFlightMicroBatches(on.plan, stage, costs.microBatches) - 1) * perMicroBatch, 0);
      const memory = stageMemory(m, on.plan, costs, stage);
      const states = costs.stages[stage]!.states;
      expect(memory.activationsBytes).toBeCloseTo(cast.activationsBytes, 0);
      expect(memory.gradientsBytes).toBeCloseTo(states.gradientsBytes + cast.castBytes, 0);
      expect(totalBytes(memory)).toBeGreaterThan(states.parametersBytes + states.gradientsBytes + states.optimizerBytes + (costs.otherTensorBytes + costs.reserveBytes) +
        stageActivationBytes(m, on.plan, stage, costs.microBatches, costs.activations));
    }
    expect(gradientCastPeak(off.model, off.plan, 0, costs.microBatches, costs.activations)).toBeUndefined();
  });

  it("is refused with 16-bit gradients and with ZeRO 2/3, naming the field", () => {
    const fp16 = rejection({ ...base, precision: "fp16", keep16BitGrads: true });
    expect(fp16.field).toBe("keep16BitGrads");
    expect(fp16.message).toContain("fp32 gradients");
    const zero2 = rejection({ ...base, zero: 2, keep16BitGrads: true });
    expect(zero2.field).toBe("zero");
    expect(zero2.message).toContain("0 or 1");
  });
});

describe("FSDP stores each weight once, as its fp32 shard (fp32ShardOnly)", () => {
  const base = { tp: 1, pp: 1, zero: 3, precision: "bf16", microBatch: 1, globalBatch: 8 } as const;

  it("holds 4 + 4 + 8 bytes per parameter of the shard where DeepSpeed's ZeRO-3 holds 2 + 4 + 12", () => {
    const deepspeed = planFor("llama2-7b", shape, base);
    const fsdp = planFor("llama2-7b", shape, { ...base, fp32ShardOnly: true });
    const a = planCosts(deepspeed.model, shape, deepspeed.plan).stages[0]!;
    const b = planCosts(fsdp.model, shape, fsdp.plan).stages[0]!;
    expect(b.params).toBe(a.params);
    const shard = a.params / 8; // ZeRO-3 over dp 8
    expect(a.states.parametersBytes).toBeCloseTo(2 * shard, 0);
    expect(a.states.optimizerBytes).toBeCloseTo(12 * shard, 0);
    expect(b.states.parametersBytes).toBeCloseTo(4 * shard, 0); // the fp32 shard is the parameter
    expect(b.states.gradientsBytes).toBeCloseTo(4 * shard, 0); // sharded fp32 gradients, as before
    expect(b.states.optimizerBytes).toBeCloseTo(8 * shard, 0); // momentum and variance only
    const ea = estimate(deepspeed.model, shape, deepspeed.plan);
    const eb = estimate(fsdp.model, shape, fsdp.plan);
    expect(ea.memory.peakBytesPerGpu - eb.memory.peakBytesPerGpu).toBeCloseTo(2 * shard, 0);
    // storage only: the same gathers and the same step
    expect(eb.time.stepSeconds).toBe(ea.time.stepSeconds);
    expect(frameworkFlags(fsdp.plan)).toContain("--fp32-shard-only");
    expect(deepspeed.plan.fp32ShardOnly).toBeUndefined();
  });

  it("is refused below ZeRO 3 and with fewer optimizer bytes than the fp32 master it keeps, naming the field", () => {
    const zero2 = rejection({ ...base, zero: 2, fp32ShardOnly: true });
    expect(zero2.field).toBe("zero");
    expect(zero2.message).toContain("3 with fp32ShardOnly");
    const small = rejection({ ...base, fp32ShardOnly: true, optimizerStateBytes: 2 });
    expect(small.field).toBe("optimizerStateBytes");
    expect(small.message).toContain("at least 4");
    expect(planFor("llama2-7b", shape, { ...base, fp32ShardOnly: true, optimizerStateBytes: 4 }).plan.optimizerStateBytes).toBe(4);
  });

  it("is searched at ZeRO 3 only, even with one data-parallel rank, where the stage otherwise does not matter", () => {
    const one = shapeOf("dgx-a100-80gb", 1);
    const { model } = planFor("llama2-7b", one, base);
    const r = searchPlans(model, one, { fp32ShardOnly: true, globalBatch: 4, seqLen: 1024 }, { top: 3 });
    const listed = [...r.plans, ...r.closest];
    expect(listed.length).toBeGreaterThan(0);
    for (const e of listed) expect([e.plan.zero, e.plan.fp32ShardOnly]).toEqual([3, true]);
  });
});

describe("optimizer state per parameter (optimizerStateBytes)", () => {
  const base = { tp: 1, pp: 1, zero: 1, precision: "bf16", microBatch: 1, globalBatch: 8 } as const;

  it("scales the optimizer's bytes (ZeRO-sharded) and the step's traffic, not the weights or gradients", () => {
    const fp32 = planFor("llama2-7b", shape, base);
    const bf16 = planFor("llama2-7b", shape, { ...base, optimizerStateBytes: 6 });
    const a = planCosts(fp32.model, shape, fp32.plan).stages[0]!;
    const b = planCosts(bf16.model, shape, bf16.plan).stages[0]!;
    expect(a.states.optimizerBytes).toBeCloseTo((12 * a.params) / 8, 0); // mixed-precision Adam's K = 12 over dp 8
    expect(b.states.optimizerBytes).toBeCloseTo((6 * b.params) / 8, 0);
    expect(b.states.parametersBytes).toBe(a.states.parametersBytes);
    expect(b.states.gradientsBytes).toBe(a.states.gradientsBytes);
    // Adam reads and writes K bytes of state, reads 4 of fp32 gradient and writes 2 of weight: 30 against 18.
    expect(a.optimizerSeconds / b.optimizerSeconds).toBeCloseTo((2 * 12 + 4 + 2) / (2 * 6 + 4 + 2), 6);
    expect(frameworkFlags(bf16.plan)).toContain("--optimizer-state-bytes 6");
    expect(frameworkFlags(fp32.plan).join(" ")).not.toContain("optimizer-state-bytes");
  });

  it("is absent from the plan at the default 12, and refused outside 1..16 naming the field", () => {
    expect(planFor("llama2-7b", shape, { ...base, optimizerStateBytes: 12 }).plan.optimizerStateBytes).toBeUndefined();
    for (const bad of [0, 17, 6.5]) {
      const e = rejection({ ...base, optimizerStateBytes: bad });
      expect(e.field).toBe("optimizerStateBytes");
      expect(e.message).toContain("1 to 16");
    }
  });

  it("is kept by the search when pinned, so a bf16 optimizer fits where fp32 Adam does not", () => {
    // Llama 2 7B on one A100 80GB without ZeRO: 2 + 4 + 12 bytes per parameter cannot fit, 2 + 4 + 6 can.
    const one = shapeOf("dgx-a100-80gb", 1);
    const { model } = planFor("llama2-7b", one, base);
    const pins = { zero: 0, microBatch: 1, globalBatch: 4, seqLen: 1024 } as const;
    expect(searchPlans(model, one, pins, { top: 1 }).plans).toHaveLength(0);
    const fits = searchPlans(model, one, { ...pins, optimizerStateBytes: 6 }, { top: 3 }).plans;
    expect(fits.length).toBeGreaterThan(0);
    for (const e of fits) expect(e.plan.optimizerStateBytes).toBe(6);
  });

  it("the executor refuses it (its Adam keeps fp32 states)", () => {
    const { model, plan } = planFor("tiny-gpt", shapeOf("dgx-h100", 1), { optimizerStateBytes: 6 });
    expect(() => validateForExecutor(model, plan)).toThrow(/fp32 master weights, momentum and variance/);
  });
});

describe("the optimizer step's traffic per parameter (optimizerStepBytesPerParam)", () => {
  const base = { tp: 1, pp: 1, zero: 3, precision: "bf16", microBatch: 1, globalBatch: 8 } as const;

  it("sets the step's HBM traffic per parameter of the shard in place of fused Adam's, and nothing else", () => {
    const fused = planFor("llama2-7b", shape, base);
    const perOp = planFor("llama2-7b", shape, { ...base, optimizerStepBytesPerParam: 92 });
    const a = planCosts(fused.model, shape, fused.plan).stages[0]!;
    const b = planCosts(perOp.model, shape, perOp.plan).stages[0]!;
    expect(b.optimizerSeconds / a.optimizerSeconds).toBeCloseTo(92 / (2 * 12 + 4 + 2), 6);
    expect(b.states).toEqual(a.states);
    expect(b.forwardSeconds).toBe(a.forwardSeconds);
    const step = (p: typeof fused) => estimate(p.model, shape, p.plan).time;
    expect(step(perOp).breakdown.optimizerSeconds - step(fused).breakdown.optimizerSeconds).toBeCloseTo(b.optimizerSeconds - a.optimizerSeconds, 9);
    expect(frameworkFlags(perOp.plan)).toContain("--optimizer-step-bytes 92");
    expect(frameworkFlags(fused.plan).join(" ")).not.toContain("optimizer-step-bytes");
    expect(fused.plan.optimizerStepBytesPerParam).toBeUndefined();
  });

  it("is refused when not a positive number of bytes up to 1000, naming the field", () => {
    for (const bad of [0, -4, Number.NaN, 1001]) {
      const e = rejection({ ...base, optimizerStepBytesPerParam: bad });
      expect(e.field).toBe("optimizerStepBytesPerParam");
      expect(e.message).toContain("fused Adam");
    }
  });

  it("is kept by the search when pinned, and the executor refuses it (it measures its own step)", () => {
    const { model } = planFor("llama2-7b", shape, base);
    const found = searchPlans(model, shape, { globalBatch: 8, optimizerStepBytesPerParam: 92 }, { top: 3 }).plans;
    expect(found.length).toBeGreaterThan(0);
    for (const e of found) expect(e.plan.optimizerStepBytesPerParam).toBe(92);
    const tiny = planFor("tiny-gpt", shapeOf("dgx-h100", 1), { optimizerStepBytesPerParam: 92 });
    expect(() => validateForExecutor(tiny.model, tiny.plan)).toThrow(/measures its own optimizer step/);
  });
});

describe("DeepSpeed's pipeline engine keeps each in-flight micro-batch's output (ppKeepOutputs)", () => {
  const big = shapeOf("dgx-a100-80gb", 64);
  const base = { tp: 2, pp: 4, microBatch: 2, globalBatch: 64, seqLen: 2048, sequenceParallel: false, recompute: "full", schedule: "1f1b" } as const;

  it("adds one 16-bit hidden state per micro-batch in flight on every stage but the last", () => {
    const off = planFor("llama2-7b", big, base);
    const on = planFor("llama2-7b", big, { ...base, ppKeepOutputs: true });
    const a = planCosts(off.model, big, off.plan);
    const b = planCosts(on.model, big, on.plan);
    const output = 2 * 2 * 2048 * off.model.hiddenSize; // bytes x micro-batch x tokens x hidden
    for (let i = 0; i < 4; i++) {
      const extra = stageMemory(on.model, on.plan, b, i).activationsBytes - stageMemory(off.model, off.plan, a, i).activationsBytes;
      expect(extra).toBeCloseTo(i === 3 ? 0 : (4 - i) * output, 0);
    }
    expect(frameworkFlags(on.plan)).toContain("--pp-keep-outputs");
  });

  it("splits the kept output over tp under sequence parallelism, and is dropped without a pipeline", () => {
    const off = planFor("llama2-7b", big, { ...base, sequenceParallel: true });
    const on = planFor("llama2-7b", big, { ...base, sequenceParallel: true, ppKeepOutputs: true });
    const extra = stageMemory(on.model, on.plan, planCosts(on.model, big, on.plan), 0).activationsBytes -
      stageMemory(off.model, off.plan, planCosts(off.model, big, off.plan), 0).activationsBytes;
    expect(extra).toBeCloseTo((4 * 2 * 2 * 2048 * off.model.hiddenSize) / 2, 0);
    expect(planFor("llama2-7b", big, { ...base, pp: 1, ppKeepOutputs: true }).plan.ppKeepOutputs).toBeUndefined();
  });

  it("keeps only the rank's 1/tp slice when the transfers are partitioned (ppScatterGather)", () => {
    const whole = planFor("llama2-7b", big, { ...base, ppKeepOutputs: true });
    const sliced = planFor("llama2-7b", big, { ...base, ppKeepOutputs: true, ppScatterGather: true });
    const kept = (x: typeof whole) => stageMemory(x.model, x.plan, planCosts(x.model, big, x.plan), 0).activationsBytes;
    const output = 2 * 2 * 2048 * whole.model.hiddenSize;
    expect(kept(whole) - kept(sliced)).toBeCloseTo((4 * output) / 2, 0); // 4 in flight on stage 0, tp 2
  });
});

describe("a fused cross-entropy (flash-attn's CrossEntropyLoss, llm-foundry's default loss)", () => {
  it("holds 4 bytes per logit at the loss's backward (16-bit logits and the 16-bit gradient), not Megatron-LM's 6 (16-bit logits and an fp32 copy)", () => {
    const input = { tp: 2, pp: 1, microBatch: 4, globalBatch: 32, seqLen: 2048, zero: 1 } as const;
    const megatron = planFor("llama2-7b", shape, input);
    const fused = planFor("llama2-7b", shape, { ...input, fusedCrossEntropy: true });
    expect(fused.plan.fusedCrossEntropy).toBe(true);
    expect(megatron.plan.fusedCrossEntropy).toBeUndefined();
    const logits = (4 * 2048 * megatron.model.vocabSize) / 2; // one micro-batch's logits on one tp rank
    expect(lossBytes(megatron.model, megatron.plan) - lossBytes(fused.model, fused.plan)).toBe(2 * logits);
    // the stage's peak falls by as much: the loss is counted once, at the backward's start
    const peak = (p: typeof megatron) => estimate(p.model, shape, p.plan).memory.peakBytesPerGpu;
    expect(peak(megatron) - peak(fused)).toBe(2 * logits);
    expect(frameworkFlags(fused.plan)).toContain("--fused-cross-entropy");
  });
});

describe("gradient accumulation as a pass of its own (gradientAccumulationBytesPerParam)", () => {
  const big = shapeOf("dgx-a100-80gb", 16);
  const base = { tp: 2, pp: 4, microBatch: 1, globalBatch: 32, seqLen: 2048, recompute: "full", precision: "fp16" } as const;
  const bandwidth = big.spec.gpu.hbmBytesPerSecond * big.spec.gpu.efficiency.memoryBandwidth;

  it("adds the bytes per parameter held to every micro-batch's weight-gradient pass, the input embedding's tables left to its own backward", () => {
    const fused = planFor("llama2-7b", big, base);
    const own = planFor("llama2-7b", big, { ...base, gradientAccumulationBytesPerParam: 6 });
    const a = planCosts(fused.model, big, fused.plan).stages;
    const b = planCosts(own.model, big, own.plan).stages;
    const { hiddenSize: h, vocabSize: V } = fused.model;
    for (let i = 0; i < 4; i++) {
      const added = b[i]!.backwardWeightSeconds - a[i]!.backwardWeightSeconds;
      // The first stage also holds the token table (V/tp rows of h); llama2-7b's positions are rotary.
      const accumulated = a[i]!.params - (i === 0 ? (V * h) / 2 : 0);
      expect(added).toBeCloseTo((6 * accumulated) / bandwidth, 12);
      expect(added).toBeGreaterThan(0);
      expect(b[i]!.forwardSeconds).toBe(a[i]!.forwardSeconds);
      expect(b[i]!.backwardInputSeconds).toBe(a[i]!.backwardInputSeconds);
      expect(b[i]!.states).toEqual(a[i]!.states);
    }
    const step = (p: typeof fused) => estimate(p.model, big, p.plan).time.stepSeconds;
    expect(step(own)).toBeGreaterThan(step(fused));
    expect(frameworkFlags(own.plan)).toContain("--grad-accum-bytes 6");
    expect(frameworkFlags(fused.plan).join(" ")).not.toContain("grad-accum-bytes");
  });

  it("is refused when not a positive number of bytes up to 100, naming the field", () => {
    for (const bad of [0, -6, Number.NaN, 101]) {
      const e = inputErrorOf(() => planFor("llama2-7b", big, { ...base, gradientAccumulationBytesPerParam: bad }));
      expect(e.field).toBe("gradientAccumulationBytesPerParam");
      expect(e.message).toContain("BF16_Optimizer");
    }
  });

  it("is kept by the search when pinned, and the executor refuses it", () => {
    const { model } = planFor("llama2-7b", big, base);
    const found = searchPlans(model, big, { globalBatch: 32, gradientAccumulationBytesPerParam: 18 }, { top: 3 }).plans;
    expect(found.length).toBeGreaterThan(0);
    for (const e of found) expect(e.plan.gradientAccumulationBytesPerParam).toBe(18);
    const tiny = planFor("tiny-gpt", shapeOf("dgx-h100", 1), { gradientAccumulationBytesPerParam: 6 });
    expect(() => validateForExecutor(tiny.model, tiny.plan)).toThrow(/gradient accumulation is its own/);
  });
});

describe("the stack's runtime reserve and its caching allocator's share (runtimeReserveBytes, allocatorCacheShare)", () => {
  const base = { tp: 2, pp: 4, microBatch: 1, globalBatch: 16, seqLen: 2048, precision: "fp16" } as const;

  it("every stage's peak is the reserve plus (1 + share) x the tensors it holds, the addition shown as other", () => {
    const plain = planFor("llama2-7b", shape, base);
    const tuned = planFor("llama2-7b", shape, { ...base, runtimeReserveBytes: 3_000_000_000, allocatorCacheShare: 0.059 });
    const plainCosts = planCosts(plain.model, shape, plain.plan);
    const costs = planCosts(tuned.model, shape, tuned.plan);
    expect(plainCosts.reserveBytes).toBe(shape.spec.gpu.runtimeReserveBytes);
    expect(costs.reserveBytes).toBe(3_000_000_000);
    for (let stage = 0; stage < base.pp; stage++) {
      const before = stageMemory(plain.model, plain.plan, plainCosts, stage);
      const after = stageMemory(tuned.model, tuned.plan, costs, stage);
      const tensors = totalBytes(before) - plainCosts.reserveBytes;
      expect(totalBytes(after)).toBeCloseTo(3_000_000_000 + 1.059 * tensors, 0);
      // States and activations are the same; the reserve and the cache are in "other".
      expect(after.parametersBytes + after.gradientsBytes + after.optimizerBytes + after.activationsBytes)
        .toBe(before.parametersBytes + before.gradientsBytes + before.optimizerBytes + before.activationsBytes);
    }
    const e = estimate(tuned.model, shape, tuned.plan).memory;
    expect(e.peakBytesPerGpu).toBeCloseTo(totalBytes(e.breakdown), 0);
    expect(e.peakBytesPerGpu).toBeGreaterThan(estimate(plain.model, shape, plain.plan).memory.peakBytesPerGpu);
  });

  it("is refused out of range, naming the field, and printed back as flags", () => {
    expect(rejection({ ...base, allocatorCacheShare: 1.5 }).field).toBe("allocatorCacheShare");
    expect(rejection({ ...base, allocatorCacheShare: -0.1 }).field).toBe("allocatorCacheShare");
    expect(rejection({ ...base, runtimeReserveBytes: -1 }).field).toBe("runtimeReserveBytes");
    expect(rejection({ ...base, runtimeReserveBytes: shape.spec.gpu.memoryBytes }).field).toBe("runtimeReserveBytes");
    expect(rejection({ ...base, runtimeReserveBytes: 1.5 }).field).toBe("runtimeReserveBytes");
    const { plan } = planFor("llama2-7b", shape, { ...base, runtimeReserveBytes: 3_000_000_000, allocatorCacheShare: 0.059 });
    expect(frameworkFlags(plan)).toContain("--runtime-reserve-bytes 3000000000");
    expect(frameworkFlags(plan)).toContain("--allocator-cache-share 0.059");
    // A zero share is the default, left out of the plan.
    expect(planFor("llama2-7b", shape, { ...base, allocatorCacheShare: 0 }).plan.allocatorCacheShare).toBeUndefined();
  });

  it("is kept by the search when pinned (fewer plans fit), and the executor refuses both", () => {
    const { model } = planFor("llama2-7b", shape, base);
    const plain = searchPlans(model, shape, { globalBatch: 16, seqLen: 4096 }, { top: 3 });
    const tuned = searchPlans(model, shape, { globalBatch: 16, seqLen: 4096, runtimeReserveBytes: 8_000_000_000, allocatorCacheShare: 0.1 }, { top: 3 });
    expect(tuned.feasible).toBeLessThan(plain.feasible);
    for (const e of tuned.plans) {
      expect(e.plan.allocatorCacheShare).toBe(0.1);
      expect(e.plan.runtimeReserveBytes).toBe(8_000_000_000);
      expect(e.memory.fits).toBe(true);
    }
    const tiny = planFor("tiny-gpt", shapeOf("dgx-h100", 1), { allocatorCacheShare: 0.05 });
    expect(() => validateForExecutor(tiny.model, tiny.plan)).toThrow(/caching allocator/);
    const reserved = planFor("tiny-gpt", shapeOf("dgx-h100", 1), { runtimeReserveBytes: 1 });
    expect(() => validateForExecutor(reserved.model, reserved.plan)).toThrow(/no GPU runtime/);
  });
});
