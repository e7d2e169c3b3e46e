import { describe, expect, it } from "vitest";
import { collective } from "../../src/planner/cost/collectives.js";
import { dpCosts, resolveLinks } from "../../src/planner/cost/communication.js";
import { estimate } from "../../src/planner/cost/estimate.js";
import { gradientBytesPerParam, layerParamsPerRank, modelStateBytes, PARAM_BYTES } from "../../src/planner/cost/memory.js";
import { searchPlans } from "../../src/planner/search/search.js";
import { validateForExecutor } from "../../src/executor/validate.js";
import { simulate } from "../../src/simulator/simulate.js";
import { InputError } from "../../src/spec/errors.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { loadModel } from "../../src/cli/catalog.js";
import { planFor, relErr, shapeOf } from "../helpers.js";

// 64 GPUs on a network a quarter of a DGX's: where hybrid sharding pays.
const slow = shapeOf("ibm-h100-800g", 64);

describe("hybrid sharding (FSDP HYBRID_SHARD): ZeRO over shard groups, replicated across them", () => {
  it("resolvePlan keeps a group that splits dp * cp and names the field for one that cannot hold", () => {
    const model = loadModel("llama3-8b");
    expect(resolvePlan(model, slow, { zero: 3, shardGroup: 8 }).shardGroup).toBe(8);
    expect(resolvePlan(model, slow, { zero: 3, shardGroup: 64 }).shardGroup).toBeUndefined(); // the whole group: plain ZeRO
    const reject = (input: Parameters<typeof resolvePlan>[2], text: RegExp) => {
      let err: unknown;
      try {
        resolvePlan(model, slow, input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).field).toBe("shardGroup");
      expect((err as Error).message).toMatch(text);
    };
    reject({ zero: 3, shardGroup: 6 }, /divisor of dp \* cp = 64/);
    reject({ zero: 3, shardGroup: 1 }, /shards nothing/);
    reject({ zero: 0, shardGroup: 8 }, /ZeRO 0/);
  });

  it("model states are sharded over the group, not over all data-parallel ranks", () => {
    const { model, plan } = planFor("llama3-8b", slow, { zero: 3, shardGroup: 8 });
    const { plan: full } = planFor("llama3-8b", slow, { zero: 3 });
    const params = { dense: model.layers * layerParamsPerRank(model, plan).dense, expert: 0 };
    const hybrid = modelStateBytes(plan, params);
    const whole = modelStateBytes(full, params);
    expect(hybrid.parametersBytes).toBeCloseTo((PARAM_BYTES * params.dense) / 8, 0);
    expect(hybrid.optimizerBytes).toBeCloseTo(whole.optimizerBytes * 8, 0); // 64-way against 8-way
  });

  it("gathers and reduce-scatters stay in the node; each shard's gradients are all-reduced across the 8 replicas", () => {
    const { plan } = planFor("llama3-8b", slow, { zero: 3, shardGroup: 8 });
    const links = resolveLinks(plan, slow);
    expect(links.dp.crossesNodes).toBe(false);
    expect(links.dpReplica?.crossesNodes).toBe(true);
    const count = 1e9;
    const c = dpCosts(plan, links, { dense: count, expert: 0 }, 32);
    const g = gradientBytesPerParam(plan);
    const ag = collective("all-gather", 8, PARAM_BYTES * count, links.dp);
    const rs = collective("reduce-scatter", 8, g * count, links.dp);
    const ar = collective("all-reduce", 8, (g * count) / 8, links.dpReplica!);
    expect(c.perMicroBatchForward).toEqual(ag);
    expect(c.perMicroBatchBackward.bytes).toBeCloseTo(ag.bytes + rs.bytes + ar.bytes, 0);
    expect(c.perMicroBatchBackward.seconds).toBeCloseTo(ag.seconds + rs.seconds + ar.seconds, 12);
    // Without hybrid sharding there is no replica link and no replica all-reduce.
    const { plan: full } = planFor("llama3-8b", slow, { zero: 3 });
    expect(resolveLinks(full, slow).dpReplica).toBeUndefined();
  });

  it("with fp32 gradients it moves as many bytes per GPU as full sharding (the ring's total), with more memory; the simulator agrees", () => {
    const model = loadModel("llama3-8b");
    const input = { zero: 3, globalBatch: 64, microBatch: 1 } as const;
    const hybrid = resolvePlan(model, slow, { ...input, shardGroup: 8 });
    const full = resolvePlan(model, slow, input);
    expect(hybrid.fp32Gradients).toBe(true);
    const h = estimate(model, slow, hybrid);
    const f = estimate(model, slow, full);
    // 7/8 of everything inside the node plus the replicas' all-reduce of a 1/8 shard = 63/64 of it in one ring.
    expect(h.communication.bytesPerGpuPerStep.dp / f.communication.bytesPerGpuPerStep.dp).toBeCloseTo(1, 9);
    expect(h.memory.peakBytesPerGpu).toBeGreaterThan(f.memory.peakBytesPerGpu);
    expect(relErr(simulate(model, slow, hybrid).estimate.time.stepSeconds, h.time.stepSeconds)).toBeLessThan(0.02);
  });

  it("the search keeps a pinned group and does not propose one by itself", () => {
    const model = loadModel("llama3-8b");
    const unpinned = searchPlans(model, slow, { zero: 3, globalBatch: 64 }, { top: 20 }).plans;
    expect(unpinned.every((e) => e.plan.shardGroup === undefined)).toBe(true);
    const pinned = searchPlans(model, slow, { zero: 3, shardGroup: 16, globalBatch: 64 }, { top: 5 }).plans;
    expect(pinned.length).toBeGreaterThan(0);
    for (const e of pinned) expect(e.plan.shardGroup === 16 || e.plan.dp * e.plan.cp === 16).toBe(true);
  });

  it("the executor refuses it loudly (it shards over the whole data-parallel group only)", () => {
    const { model, plan } = planFor("tiny-gpt", shapeOf("dgx-h100", 4), { zero: 3, shardGroup: 2 });
    expect(() => validateForExecutor(model, plan)).toThrow(/hybrid sharding is not implemented/);
  });
});
