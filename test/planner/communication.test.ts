import { describe, expect, it } from "vitest";
import { collective } from "../../src/planner/cost/collectives.js";
import { loadModel } from "../../src/cli/catalog.js";
import { dpContention, dpCosts, passTotal, ppScatterGatherCounts, ppTransfer, resolveLinks, spReplicatedGradCost, tpCostPerMicroBatch, vocabCrossEntropyCost } from "../../src/planner/cost/communication.js";
import { headTimes, layerTimes } from "../../src/planner/cost/compute.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { planCosts } from "../../src/planner/cost/stages.js";
import { effectiveLink, groupPlacement } from "../../src/planner/cost/placement.js";
import { microBatchCount, resolvePlan } from "../../src/spec/plan.js";
import type { ClusterShape, ModelSpec, Plan } from "../../src/spec/types.js";
import { planFor, shapeOf } from "../helpers.js";

/** The compute the tensor-parallel collectives may hide behind, as planCosts passes it. */
function windows(model: ModelSpec, plan: Plan, shape: ClusterShape) {
  return { layer: layerTimes(model, shape.spec.gpu, plan), head: headTimes(model, shape.spec.gpu, plan) };
}

const h100 = shapeOf("dgx-h100", 64);
const link = { name: "test", bytesPerSecond: 100e9, latencySeconds: 1e-5, crossesNodes: false };

describe("collectives in the alpha-beta model (NCCL bus-bandwidth convention)", () => {
  it("all-reduce sends 2(n-1)/n of the buffer in 2(n-1) steps; all-gather and reduce-scatter (n-1)/n", () => {
    const ar = collective("all-reduce", 8, 1e9, link);
    expect(ar.bytes).toBeCloseTo((2 * 7 * 1e9) / 8, 3);
    expect(ar.seconds).toBeCloseTo(14 * 1e-5 + ar.bytes / 100e9, 12);
    for (const kind of ["all-gather", "reduce-scatter", "all-to-all"] as const) {
      const c = collective(kind, 8, 1e9, link);
      expect(c.bytes).toBeCloseTo((7 * 1e9) / 8, 3);
      expect(c.seconds).toBeCloseTo(7 * 1e-5 + c.bytes / 100e9, 12);
    }
    expect(collective("all-reduce", 1, 1e9, link)).toEqual({ bytes: 0, seconds: 0 });
  });
});

describe("rank placement: tp fastest, then cp, dp, pp (Megatron order)", () => {
  it("a tp group of 8 stays in a node and uses NVLink; the dp group across nodes uses the network", () => {
    const { plan } = planFor("llama3-70b", h100, { tp: 8, pp: 2 });
    expect(groupPlacement("tp", plan, 8)).toMatchObject({ nodes: 1, membersPerNode: 8 });
    expect(groupPlacement("dp", plan, 8)).toMatchObject({ degree: 4, stride: 8, nodes: 4, membersPerNode: 1 });
    expect(groupPlacement("pp", plan, 8)).toMatchObject({ degree: 2, stride: 32, nodes: 2 });
    const links = resolveLinks(plan, h100);
    expect(links.tp.crossesNodes).toBe(false);
    expect(links.tp.name).toBe(h100.spec.intraNode.link);
    expect(links.dp.crossesNodes).toBe(true);
    expect(links.dp.name).toBe(h100.spec.interNode.link);
    expect(links.dp.bytesPerSecond).toBeCloseTo(h100.spec.interNode.bytesPerSecondPerGpu * h100.spec.interNode.busBandwidthEfficiency, 0);
  });

  it("a tp group of 16 spans two nodes and is limited by the network", () => {
    const shape = shapeOf("dgx-h100", 16);
    const { plan } = planFor("llama3-405b", shape, { tp: 16 });
    const p = groupPlacement("tp", plan, 8);
    expect(p).toMatchObject({ nodes: 2, membersPerNode: 8 });
    const l = effectiveLink(p, shape);
    expect(l.crossesNodes).toBe(true);
    expect(l.bytesPerSecond).toBeLessThanOrEqual(shape.spec.intraNode.bytesPerSecondPerGpu);
  });

  it("groups that do not tile the nodes are placed as their worst group: the one straddling a node boundary", () => {
    const { plan } = planFor("llama3-8b", h100, { tp: 4 });
    // 6-GPU nodes: ranks 4,5 | 6,7 form the second tp group (2 nodes, 2 members on each)
    expect(groupPlacement("tp", plan, 6)).toMatchObject({ nodes: 2, membersPerNode: 2 });
    // 3-GPU nodes: ranks 0,1,2 | 3 (2 nodes, 1 member on the second); 5-GPU nodes: 4 | 5,6,7 likewise
    expect(groupPlacement("tp", plan, 3)).toMatchObject({ nodes: 2, membersPerNode: 1 });
    expect(groupPlacement("tp", plan, 5)).toMatchObject({ nodes: 2, membersPerNode: 1 });
    // tiling layouts keep their closed forms: a group per node, or members a node apart
    expect(groupPlacement("tp", plan, 4)).toMatchObject({ nodes: 1, membersPerNode: 4 });
    expect(groupPlacement("tp", plan, 2)).toMatchObject({ nodes: 2, membersPerNode: 2 });
    expect(groupPlacement("tp", plan, 1)).toMatchObject({ nodes: 4, membersPerNode: 1 });
    // the straddling group crosses the network, at the rate of the NICs of its thinnest node
    const six = shapeOf("dgx-h100", 24);
    expect(effectiveLink(groupPlacement("tp", plan, 6), six)).toEqual(effectiveLink(groupPlacement("tp", plan, 2), six));
  });

  it("a cluster's per-group cap bounds the line rate one group's ring drives across nodes (Jean Zay: one Omni-Path port)", () => {
    const jz = shapeOf("jean-zay-a100-80gb", 384);
    const inter = jz.spec.interNode;
    const cap = inter.maxBytesPerSecondPerGroup;
    expect(cap).toBe(12.5e9);
    const dpLink = (tp: number) => {
      const { plan } = planFor("llama3-70b", jz, { tp, pp: 1 });
      return { placement: groupPlacement("dp", plan, 8), link: resolveLinks(plan, jz).dp };
    };
    // tp 8: one member per node drives its GPU's share; below the cap.
    const one = dpLink(8);
    expect(one.placement.membersPerNode).toBe(1);
    expect(one.link.bytesPerSecond).toBeCloseTo(inter.bytesPerSecondPerGpu * inter.busBandwidthEfficiency, 0);
    // tp 4 and tp 2: two and four members per node reach one port's line rate, and no more.
    for (const [tp, members] of [[4, 2], [2, 4]] as const) {
      const g = dpLink(tp);
      expect(g.placement.membersPerNode).toBe(members);
      expect(g.link.bytesPerSecond).toBeCloseTo(cap! * inter.busBandwidthEfficiency, 0);
    }
    // Without the cap the same four members drive four shares (the default everywhere else).
    const { maxBytesPerSecondPerGroup: _dropped, ...noCap } = inter;
    const uncapped = { ...jz, spec: { ...jz.spec, interNode: noCap } };
    const { plan } = planFor("llama3-70b", jz, { tp: 2, pp: 1 });
    expect(resolveLinks(plan, uncapped).dp.bytesPerSecond).toBeCloseTo(4 * inter.bytesPerSecondPerGpu * inter.busBandwidthEfficiency, 0);
    expect(shapeOf("dgx-h100", 64).spec.interNode.maxBytesPerSecondPerGroup).toBeUndefined();
  });

  it("with a pcie box there is no NVLink: even a tp group inside the node uses PCIe", () => {
    const shape = shapeOf("pcie-h100", 8);
    const { plan } = planFor("llama3-8b", shape, { tp: 8 });
    expect(resolveLinks(plan, shape).tp.name).toBe(shape.spec.intraNode.link);
    expect(resolveLinks(plan, shape).tp.bytesPerSecond).toBeLessThan(100e9);
  });
});

describe("communication volumes per GPU per step", () => {
  it("Megatron tp: 4 all-reduces of b*s*h per layer per micro-batch (2 forward, 2 backward); with SP all-gathers and reduce-scatters plus 2 backward re-gathers", () => {
    const base = { tp: 8, pp: 2, globalBatch: 64 };
    for (const sequenceParallel of [true, false]) {
      const { model, plan } = planFor("llama3-70b", h100, { ...base, sequenceParallel });
      const links = resolveLinks(plan, h100);
      const first = tpCostPerMicroBatch(model, plan, links, 0, windows(model, plan, h100));
      const bytes = 2 * plan.seqLen * plan.microBatch * model.hiddenSize;
      const share = 7 / 8;
      // SP keeps s b h / t of the QKV and MLP inputs, so the backward all-gathers them again (Korthikanti et al. 2022, 4.2.2).
      const layer = 4 * 2 * share * bytes + (sequenceParallel ? 2 * share * bytes : 0);
      // stage 0 also reduces the embedding output once (an all-reduce, or with SP a reduce-scatter plus its backward all-gather)
      expect(passTotal(first).bytes).toBeCloseTo(40 * layer + 2 * share * bytes, -2);
      expect(first.forward.bytes).toBeCloseTo(40 * 4 * share * bytes + (sequenceParallel ? share : 2 * share) * bytes, -2);
    }
  });

  it("the last stage adds the output layer (SP: gather, reduce-scatter and re-gather) and cross-entropy's 3 fp32 all-reduces per token", () => {
    for (const sequenceParallel of [true, false]) {
      const { model, plan } = planFor("llama3-70b", h100, { tp: 8, pp: 2, globalBatch: 64, sequenceParallel });
      const links = resolveLinks(plan, h100);
      const tokens = plan.seqLen * plan.microBatch;
      const bytes = 2 * tokens * model.hiddenSize;
      const layers = passTotal(tpCostPerMicroBatch(model, plan, links, 0, windows(model, plan, h100))).bytes - 2 * (7 / 8) * bytes; // 40 layers, no embedding
      const ce = vocabCrossEntropyCost(plan, links);
      expect(ce.bytes).toBeCloseTo(3 * 2 * (7 / 8) * 4 * tokens, 3);
      const head = sequenceParallel ? 3 * (7 / 8) * bytes : 2 * (7 / 8) * bytes;
      expect(passTotal(tpCostPerMicroBatch(model, plan, links, 1, windows(model, plan, h100))).bytes).toBeCloseTo(layers + head + ce.bytes, -2);
    }
    const { plan } = planFor("llama3-8b", h100, { tp: 1 });
    expect(vocabCrossEntropyCost(plan, resolveLinks(plan, h100))).toEqual({ bytes: 0, seconds: 0 });
  });

  it("Megatron-LM hides each column-parallel linear's backward collectives behind its gradient GEMMs; tpSyncBackward exposes them all", () => {
    // tp 8 over a slow link, so that some of each collective shows beyond its GEMM and the comparison is not trivially 0.
    const slow = { ...h100, spec: { ...h100.spec, intraNode: { ...h100.spec.intraNode, bytesPerSecondPerGpu: 10e9 } } };
    for (const sequenceParallel of [true, false]) {
      const { model, plan: async } = planFor("llama3-70b", slow, { tp: 8, pp: 2, globalBatch: 64, sequenceParallel });
      const sync = resolvePlan(model, slow, { tp: 8, pp: 2, globalBatch: 64, sequenceParallel, tpSyncBackward: true });
      const links = resolveLinks(async, slow);
      const layer = layerTimes(model, slow.spec.gpu, async);
      expect(layer.columnGemmSeconds).toHaveLength(2); // QKV and the first MLP matrix
      const bytes = 2 * async.seqLen * async.microBatch * model.hiddenSize;
      const one = (kind: "all-reduce" | "all-gather" | "reduce-scatter") => collective(kind, 8, bytes, links.tp).seconds;
      // per column linear: SP re-gather behind the input-gradient GEMM and reduce-scatter behind the weight-gradient GEMM; else the all-reduce
      const hidden = layer.columnGemmSeconds.reduce((a, g) =>
        a + (sequenceParallel ? Math.max(0, one("all-gather") - g) + Math.max(0, one("reduce-scatter") - g) : Math.max(0, one("all-reduce") - g)), 0);
      const rowParallel = sequenceParallel ? 2 * one("all-gather") : 0;
      const column = sequenceParallel ? one("all-gather") + one("reduce-scatter") : one("all-reduce");
      const a = tpCostPerMicroBatch(model, async, links, 0, windows(model, async, slow));
      const s = tpCostPerMicroBatch(model, sync, resolveLinks(sync, slow), 0, windows(model, sync, slow));
      const layers = async.layersPerStage[0]!;
      const embedding = sequenceParallel ? one("all-gather") : 0;
      expect(s.backward.seconds).toBeCloseTo(layers * (rowParallel + 2 * column) + embedding, 9);
      expect(a.backward.seconds).toBeCloseTo(layers * (rowParallel + hidden) + embedding, 9);
      expect(a.backward.seconds).toBeLessThan(s.backward.seconds);
      expect(hidden).toBeGreaterThan(0); // the slow link leaves some of it showing
      // Same bytes, same forward: only what shows changes.
      expect(a.backward.bytes).toBeCloseTo(s.backward.bytes, 0);
      expect(a.forward).toEqual(s.forward);
    }
  });

  it("a mixture of experts over ep with tp and SP (Megatron-Core's alltoall dispatcher): the MLP half moves the token copies' rows, k times a dense MLP's", () => {
    const shape = shapeOf("dgx-h100", 16);
    // Two stages: the first holds the embedding, not the output layer.
    const dispatched = planFor("mixtral-8x7b", shape, { tp: 2, pp: 2, ep: 4, dp: 4, microBatch: 1, sequenceParallel: true });
    const gathered = planFor("mixtral-8x7b", shape, { tp: 2, pp: 2, ep: 1, dp: 4, microBatch: 1, sequenceParallel: true });
    const { model } = dispatched;
    const k = model.moe!.topK;
    const cost = (p: typeof dispatched) => tpCostPerMicroBatch(p.model, p.plan, resolveLinks(p.plan, shape), 0, windows(p.model, p.plan, shape));
    const layers = dispatched.plan.layersPerStage[0]!;
    const bytes = 2 * dispatched.plan.seqLen * model.hiddenSize;
    const share = 1 / 2;
    // Forward, per layer: the attention half's all-gather and reduce-scatter of x h, the MLP half's of x k h
    // (ep 1: of x h, as a dense MLP's). The embedding's reduce-scatter besides.
    expect(cost(dispatched).forward.bytes).toBeCloseTo(layers * (2 + 2 * k) * share * bytes + share * bytes, -2);
    expect(cost(gathered).forward.bytes).toBeCloseTo(layers * 4 * share * bytes + share * bytes, -2);
    // Backward, per layer: the attention half as a dense layer's (its out-projection's all-gather, the QKV's
    // reduce-scatter and re-gather); the MLP half the copies' all-gather and reduce-scatter, no re-gather (ep 1:
    // the down-projection's all-gather, the first matrices' reduce-scatter and re-gather). The embedding's all-gather.
    expect(cost(dispatched).backward.bytes).toBeCloseTo(layers * (3 + 2 * k) * share * bytes + share * bytes, -2);
    expect(cost(gathered).backward.bytes).toBeCloseTo(layers * 6 * share * bytes + share * bytes, -2);
  });

  it("ppScatterGather sends 1/tp of each stage output and all-gathers it over tp at the receiver (SC'21 section 4.1; DeepSpeed pipe_partitioned)", () => {
    const base = { tp: 8, pp: 4, globalBatch: 64, sequenceParallel: false } as const;
    const { model, plan: whole } = planFor("llama3-70b", h100, base);
    const split = resolvePlan(model, h100, { ...base, ppScatterGather: true });
    const links = resolveLinks(split, h100);
    const bytes = 2 * split.seqLen * split.microBatch * model.hiddenSize;
    expect(ppTransfer(model, whole, links).bytes).toBe(bytes);
    expect(ppTransfer(model, split, links).bytes).toBe(bytes / 8);
    expect(ppTransfer(model, split, links).seconds).toBeLessThan(ppTransfer(model, whole, links).seconds);
    const gather = collective("all-gather", 8, bytes, links.tp);
    for (let i = 0; i < 4; i++) {
      const a = tpCostPerMicroBatch(model, whole, links, i, windows(model, whole, h100));
      const b = tpCostPerMicroBatch(model, split, links, i, windows(model, split, h100));
      // Megatron-LM: the receiver gathers each activation (none into stage 0) and each gradient (none into the last stage).
      expect(b.forward.seconds - a.forward.seconds).toBeCloseTo(i === 0 ? 0 : gather.seconds, 12);
      expect(b.backward.seconds - a.backward.seconds).toBeCloseTo(i === 3 ? 0 : gather.seconds, 12);
      expect(b.forward.bytes - a.forward.bytes).toBeCloseTo(i === 0 ? 0 : gather.bytes, 0);
    }
    // DeepSpeed's engine also re-gathers the sender's own output before its backward; interleaving gathers per chunk.
    const ds = resolvePlan(model, h100, { ...base, ppScatterGather: true, ppBlockingSends: true });
    expect(ppScatterGatherCounts(ds, 1)).toEqual({ forward: 1, backward: 2 });
    expect(ppScatterGatherCounts(ds, 3)).toEqual({ forward: 1, backward: 0 });
    const v2 = resolvePlan(model, h100, { ...base, virtualStages: 2, schedule: "interleaved", ppScatterGather: true });
    expect(ppScatterGatherCounts(v2, 0)).toEqual({ forward: 1, backward: 2 });
    expect(ppScatterGatherCounts(v2, 3)).toEqual({ forward: 2, backward: 1 });
  });

  it("ppScatterGather is off by default and dropped under SP (whose transfers are already split), at tp 1 and at pp 1", () => {
    const { model, plan } = planFor("llama3-70b", h100, { tp: 8, pp: 2, globalBatch: 64 });
    expect(plan.ppScatterGather).toBeUndefined();
    expect(resolvePlan(model, h100, { tp: 8, pp: 2, ppScatterGather: true }).ppScatterGather).toBeUndefined(); // SP on by default
    expect(resolvePlan(model, h100, { tp: 1, pp: 8, ppScatterGather: true }).ppScatterGather).toBeUndefined();
    expect(resolvePlan(model, h100, { tp: 8, pp: 1, sequenceParallel: false, ppScatterGather: true }).ppScatterGather).toBeUndefined();
    expect(resolvePlan(model, h100, { tp: 8, pp: 2, sequenceParallel: false, ppScatterGather: true }).ppScatterGather).toBe(true);
  });

  it("tpSyncBackward is off by default, refused at tp 1 (it would be dropped) and beside tpCommOverlap", () => {
    const { model, plan } = planFor("llama3-70b", h100, { tp: 8, pp: 2, globalBatch: 64 });
    expect(plan.tpSyncBackward).toBeUndefined();
    expect(() => resolvePlan(model, h100, { tp: 1, pp: 8, tpSyncBackward: true })).toThrow(/tpSyncBackward = true is not valid.*tp is 1/);
    expect(resolvePlan(model, h100, { tp: 1, pp: 8, tpSyncBackward: false }).tpSyncBackward).toBeUndefined();
    expect(() => resolvePlan(model, h100, { tp: 8, pp: 2, tpSyncBackward: true, tpCommOverlap: true })).toThrow(/tpSyncBackward/);
  });

  it("SP all-reduces the tp-replicated weights' gradients once per step (Megatron-LM finalize_model_grads), inside the once-per-step reduction", () => {
    const gpt = { ...loadModel("tiny-gpt"), layers: 4 }; // LayerNorm, learned positions, biases
    const shape = shapeOf("dgx-h100", 8);
    const plan = resolvePlan(gpt, shape, { tp: 2, pp: 2, dp: 2, zero: 1, globalBatch: 8 });
    const links = resolveLinks(plan, shape);
    const h = gpt.hiddenSize;
    const g = plan.fp32Gradients ? 4 : 2;
    // per layer 2 LayerNorms (2h each) and the attention-output and MLP-output biases (h each)
    const perLayer = 2 * 2 * h + 2 * h;
    const first = spReplicatedGradCost(gpt, plan, links, 0);
    expect(first.bytes).toBeCloseTo(g * (2 * perLayer + gpt.seqLen * h), 6); // + learned positions
    const last = spReplicatedGradCost(gpt, plan, links, 1);
    expect(last.bytes).toBeCloseTo(g * (2 * perLayer + 2 * h), 6); // + final norm
    const params = { dense: 1e6, expert: 0 };
    const plain = dpCosts(plan, links, params, 2);
    const withSync = dpCosts(plan, links, params, 2, last);
    expect(withSync.reduceOnce.bytes - plain.reduceOnce.bytes).toBeCloseTo(last.bytes, 6);
    expect(spReplicatedGradCost(gpt, { ...plan, sequenceParallel: false }, links, 0)).toEqual({ bytes: 0, seconds: 0 });
  });

  it("ZeRO-1 and 2 move as much as an all-reduce per step; ZeRO-3 1.5x (Rajbhandari et al. 2020, section 7)", () => {
    const dpOnly = shapeOf("dgx-h100", 64);
    const bytes = (zero: number) => {
      const { model, plan } = planFor("llama3-8b", dpOnly, { zero, precision: "fp16", globalBatch: 64 }); // one micro-batch per replica
      return estimate(model, dpOnly, plan).communication.bytesPerGpuPerStep.dp;
    };
    const ar = bytes(0);
    expect(bytes(1)).toBeCloseTo(ar, -3);
    expect(bytes(2)).toBeCloseTo(ar, -3);
    expect(bytes(3)).toBeCloseTo(1.5 * ar, -3);
  });

  it("ZeRO-2 and 3 reduce every micro-batch; ZeRO-0 and 1 once per step", () => {
    const { model, plan } = planFor("llama3-8b", h100, { zero: 1, globalBatch: 256 });
    const once = dpCosts(plan, resolveLinks(plan, h100), { dense: 1e9, expert: 0 }, model.layers);
    expect(once.perMicroBatchBackward.bytes).toBe(0);
    expect(once.reduceOnce.bytes).toBeGreaterThan(0);
    const { plan: z2 } = planFor("llama3-8b", h100, { zero: 2, globalBatch: 256 });
    expect(dpCosts(z2, resolveLinks(z2, h100), { dense: 1e9, expert: 0 }, model.layers).perMicroBatchBackward.bytes).toBeGreaterThan(0);
  });

  it("context parallel sends K and V round the ring; expert parallel all-to-alls only with experts", () => {
    const { model, plan } = planFor("llama3-8b", h100, { tp: 2, cp: 4, seqLen: 32768 });
    const e = estimate(model, h100, plan);
    expect(e.communication.bytesPerGpuPerStep.cp).toBeGreaterThan(0);
    expect(e.communication.bytesPerGpuPerStep.ep).toBe(0);
    const moe = planFor("mixtral-8x7b", h100, { ep: 8, tp: 1 });
    expect(estimate(moe.model, h100, moe.plan).communication.bytesPerGpuPerStep.ep).toBeGreaterThan(0);
  });
});

describe("compute slowed beside data-parallel collectives (Lee et al. 2025)", () => {
  const withSlowdown = (shape: ClusterShape, slowdown: number): ClusterShape =>
    ({ ...shape, spec: { ...shape.spec, gpu: { ...shape.spec.gpu, efficiency: { ...shape.spec.gpu.efficiency, commOverlapSlowdown: slowdown } } } });

  it("ZeRO-3: each pass is charged the slowdown times the time its gathers and reductions overlap it", () => {
    const shape = shapeOf("dgx-h100", 64);
    const { model, plan } = planFor("llama3-8b", shape, { zero: 3, microBatch: 1 });
    const alone = planCosts(model, withSlowdown(shape, 0), plan).stages[0]!;
    const beside = planCosts(model, withSlowdown(shape, 0.25), plan).stages[0]!;
    const dp = alone.dp;
    expect(dp.perMicroBatchForward.seconds).toBeGreaterThan(0);
    const backward = alone.backwardInputSeconds + alone.backwardWeightSeconds + alone.recomputeSeconds;
    expect(beside.forwardSeconds - alone.forwardSeconds).toBeCloseTo(0.25 * Math.min(dp.perMicroBatchForward.seconds, alone.forwardSeconds), 12);
    expect(beside.backwardWeightSeconds - alone.backwardWeightSeconds).toBeCloseTo(0.25 * Math.min(dp.perMicroBatchBackward.seconds, backward), 12);
    expect(beside.backwardInputSeconds).toBe(alone.backwardInputSeconds);
    // A slower step: the contention is not hidden.
    expect(estimate(model, withSlowdown(shape, 0.25), plan).time.stepSeconds).toBeGreaterThan(estimate(model, withSlowdown(shape, 0), plan).time.stepSeconds);
  });

  it("the once-per-step reduction (ZeRO-1) is spread over the micro-batches' backwards; never more than the pass", () => {
    const shape = shapeOf("dgx-h100", 64);
    const { model, plan } = planFor("llama3-8b", shape, { zero: 1, microBatch: 1 });
    const dp = planCosts(model, withSlowdown(shape, 0), plan).stages[0]!.dp;
    const m = microBatchCount(plan);
    const c = dpContention(plan, dp, 1, 1e9, 0.2);
    expect(c.forwardSeconds).toBe(0);
    expect(c.backwardSeconds).toBeCloseTo((0.2 * (dp.reduceOnce.seconds + dp.gatherOnce.seconds)) / m, 15);
    expect(dpContention(plan, dp, 1, 1e-9, 0.2).backwardSeconds).toBeCloseTo(0.2 * 1e-9, 20);
  });

  it("none without data parallelism, without a slowdown, with in-line (blocking) or exposed once-per-step traffic", () => {
    const shape = shapeOf("dgx-h100", 8);
    const single = planFor("llama3-8b", shape, { pp: 8 });
    expect(dpContention(single.plan, planCosts(single.model, shape, single.plan).stages[0]!.dp, 1, 1, 0.2)).toEqual({ forwardSeconds: 0, backwardSeconds: 0 });
    const z3 = planFor("llama3-8b", shape, { zero: 3, microBatch: 1 });
    const dp = planCosts(z3.model, shape, z3.plan).stages[0]!.dp;
    expect(dpContention(z3.plan, dp, 1, 1, 0)).toEqual({ forwardSeconds: 0, backwardSeconds: 0 });
    expect(dpContention({ ...z3.plan, dpCommBlocking: true }, dp, 1, 1, 0.2)).toEqual({ forwardSeconds: 0, backwardSeconds: 0 });
    const z1 = planFor("llama3-8b", shape, { zero: 1, microBatch: 1 });
    const dp1 = planCosts(z1.model, shape, z1.plan).stages[0]!.dp;
    expect(dp1.reduceOnce.seconds).toBeGreaterThan(0);
    expect(dpContention({ ...z1.plan, dpCommExposed: true }, dp1, 1, 1, 0.2)).toEqual({ forwardSeconds: 0, backwardSeconds: 0 });
  });
});

