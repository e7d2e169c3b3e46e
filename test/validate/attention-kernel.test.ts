import { describe, expect, it } from "vitest";
import { builtinNames, loadCluster, loadModel } from "../../src/cli/catalog.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { recordCase } from "../../src/validate/cases.js";
import { withAttentionKernel } from "../../src/validate/calibration.js";
import { readMeasurements } from "../../src/validate/files.js";
import { attentionSlowdown } from "../../src/validate/profiles.js";

describe("attention kernels of the frameworks, against the GPU priors' kernel", () => {
  it("chains the published ratios from the prior's kernel down to the framework's", () => {
    // A100 priors are FlashAttention-2: FA2 itself costs nothing extra; Triton (2022) 1.4x forward, 2x backward.
    expect(attentionSlowdown("flash-attention-2", "a100-sxm-80gb")).toEqual({ forward: 1, backward: 1 });
    expect(attentionSlowdown("triton-flash-2022", "a100-sxm-40gb")).toEqual({ forward: 1.4, backward: 2 });
    // H100 priors are FlashAttention-3: FA2 is 1.75x / 1.625x slower, Triton (2022) compounds both.
    expect(attentionSlowdown("flash-attention-2", "h100-sxm")).toEqual({ forward: 1.75, backward: 1.625 });
    const t = attentionSlowdown("triton-flash-2022", "h100-sxm")!;
    expect(t.forward).toBeCloseTo(1.75 * 1.4, 12);
    expect(t.backward).toBeCloseTo(1.625 * 2, 12);
    // No ratio is published against B200's FlashAttention-4, nor for a kernel newer than the prior.
    expect(attentionSlowdown("flash-attention-2", "b200")).toBeUndefined();
    expect(attentionSlowdown("flash-attention-3", "a100-sxm-80gb")).toBeUndefined();
  });

  it("stretches exactly the fused-attention time of a step, and nothing else", () => {
    const model = loadModel("llama3-8b");
    const spec = loadCluster("dgx-a100-80gb");
    const slow = withAttentionKernel(spec, "triton-flash-2022");
    expect(slow.gpu.efficiency.matmulMax).toBe(spec.gpu.efficiency.matmulMax);
    const timeOf = (s: typeof spec, seqLen: number) => {
      const shape = { spec: s, gpus: 8, gpusPerNode: 8 };
      return estimate(model, shape, resolvePlan(model, shape, { seqLen, globalBatch: 8, flashAttention: true })).time.stepSeconds;
    };
    // Longer sequences spend a larger share in attention, so the slower kernel costs more there.
    const short = timeOf(slow, 1024) / timeOf(spec, 1024);
    const long = timeOf(slow, 16384) / timeOf(spec, 16384);
    expect(short).toBeGreaterThan(1);
    expect(long).toBeGreaterThan(short);
    // Forward 1.4x, backward (2.5x the forward's time) 2x: the attention time grows by (1.4 + 2.5 * 2) / 3.5.
    expect(long).toBeLessThan((1.4 + 2.5 * 2) / 3.5);
    expect(withAttentionKernel(spec, undefined)).toBe(spec);
  });

  it("llm-foundry's benchmark rows run the Triton kernel; torchtitan's run FlashAttention-2; Megatron's the priors'", () => {
    const records = readMeasurements();
    const builtins = builtinNames("model").map(loadModel);
    const kernelOf = (source: string) => {
      const r = records.find((x) => x.source === source && "case" in recordCase(x, builtins))!;
      const out = recordCase(r, builtins);
      return "case" in out ? out.case.attentionKernel : "skipped";
    };
    expect(kernelOf("llm-foundry-mpt")).toBe("triton-flash-2022");
    expect(kernelOf("torchtitan")).toBe("flash-attention-2");
    expect(kernelOf("megatron-h100-2024")).toBeUndefined();
  });

  it("NeMo's 24.03.01 rows run flash-attn 2 (the launcher disabled cuDNN attention); its 24.07 rows keep the prior", () => {
    const builtins = builtinNames("model").map(loadModel);
    const nemo = readMeasurements().filter((x) => x.source === "nemo-performance-summary");
    const kernels = new Map<string, Set<string | undefined>>();
    for (const r of nemo) {
      const out = recordCase(r, builtins);
      if (!("case" in out)) continue;
      const container = r.publication.includes("NeMo24.03") ? "24.03" : r.publication.includes("NeMo24.07") ? "24.07" : "other";
      if (!kernels.has(container)) kernels.set(container, new Set());
      kernels.get(container)!.add(out.case.attentionKernel);
      if (out.case.attentionKernel !== undefined) expect(out.case.assumptions.join("; ")).toContain("attention kernel flash-attention-2");
    }
    expect([...kernels.get("24.03")!]).toEqual(["flash-attention-2"]);
    expect([...kernels.get("24.07")!]).toEqual([undefined]);
  });
});
