import { describe, expect, it } from "vitest";
import { expertCapacity, routeTokens } from "../../src/executor/model/routing.js";
import { validateForExecutor } from "../../src/executor/validate.js";
import { loadModel } from "../../src/cli/catalog.js";
import { resolvePlan, type PlanInput } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

/** Router probabilities of `rows` tokens over `experts` from a row-major list. */
const probs = (rows: number[][]) => new Float32Array(rows.flat());

describe("routing a micro-batch to its experts (model/moe.ts routeTokens)", () => {
  it("sends each token to its topK most probable experts, ties to the lower index", () => {
    // One sequence of 4 tokens, 4 experts, top 2: capacity 4 x 2 / 4 = 2 per expert.
    const r = routeTokens(probs([[0.1, 0.5, 0.3, 0.1], [0.4, 0.1, 0.1, 0.4], [0.2, 0.2, 0.5, 0.1], [0.1, 0.1, 0.2, 0.6]]), 4, 1, 4, 2);
    expect(r.perExpert).toBe(2);
    expect([...r.choice.subarray(0, 4)]).toEqual([1, 0, 2, 3]); // first choices (token 1: experts 0 and 3 tie)
    expect([...r.choice.subarray(4, 8)]).toEqual([2, 3, 0, 2]); // second choices (token 2: experts 0 and 1 tie)
  });

  it("fills each expert's slots first choice before second, position by position, and drops a copy whose expert is full", () => {
    // Every token prefers expert 0, then expert 1: capacity 2 (4 tokens x 2 / 4 experts).
    const r = routeTokens(probs(Array.from({ length: 4 }, () => [0.4, 0.3, 0.2, 0.1])), 4, 1, 4, 2);
    // First choices: tokens 0 and 1 take expert 0's two slots (rows 0, 1); tokens 2 and 3 are dropped.
    expect([...r.slot.subarray(0, 4)]).toEqual([0, 1, -1, -1]);
    // Second choices: tokens 0 and 1 take expert 1's slots (rows 2, 3); 2 and 3 dropped again.
    expect([...r.slot.subarray(4, 8)]).toEqual([2, 3, -1, -1]);
    // Experts 2 and 3 got nothing: their slots are empty.
    expect([...r.source]).toEqual([0, 1, 4, 5, -1, -1, -1, -1]);
  });

  it("routes each sequence of a micro-batch as it would alone (rows are position-major: position x batch + sequence)", () => {
    const tokens = 8;
    const experts = 4;
    const k = 2;
    let seed = 3;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const seqs = [0, 1, 2].map(() => Array.from({ length: tokens }, () => Array.from({ length: experts }, rand)));
    const batch = seqs.length;
    const together = routeTokens(probs(Array.from({ length: tokens * batch }, (_, row) => seqs[row % batch]![Math.floor(row / batch)]!)), tokens, batch, experts, k);
    const capacity = expertCapacity(tokens, k, experts);
    seqs.forEach((seq, b) => {
      const alone = routeTokens(probs(seq), tokens, 1, experts, k);
      for (let j = 0; j < k; j++) {
        for (let pos = 0; pos < tokens; pos++) {
          const row = pos * batch + b;
          expect(together.choice[j * tokens * batch + row]).toBe(alone.choice[j * tokens + pos]);
          const slotAlone = alone.slot[j * tokens + pos]!;
          const slotTogether = together.slot[j * tokens * batch + row]!;
          // Expert e's block holds each sequence's `capacity` slots in turn.
          expect(slotTogether).toBe(slotAlone < 0 ? -1 : Math.floor(slotAlone / capacity) * batch * capacity + b * capacity + (slotAlone % capacity));
        }
      }
    });
    // Every taken slot names the copy that took it, and every copy that was not dropped has one slot.
    const taken = [...together.slot].filter((x) => x >= 0);
    expect(new Set(taken).size).toBe(taken.length);
    taken.forEach((row) => expect(together.slot[together.source[row]!]).toBe(row));
  });

  it("routes in groups of a sequence's positions (a cp rank's) as each group would be routed alone", () => {
    const tokens = 8;
    const experts = 4;
    const k = 2;
    const batch = 2;
    const group = 4; // cp2's positions of a sequence of 8
    let seed = 11;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const rows = Array.from({ length: tokens * batch }, () => Array.from({ length: experts }, rand));
    const grouped = routeTokens(probs(rows), tokens, batch, experts, k, group);
    // capacity per group 4 x 2 / 4 = 2; each expert's buffer: 2 groups of positions x 2 sequences x 2 slots
    expect(grouped.perExpert).toBe(8);
    for (const chunk of [0, 1]) {
      // The cp rank holding positions [4 chunk, 4 chunk + 4): rows of those positions, in the same order.
      const mine = rows.slice(chunk * group * batch, (chunk + 1) * group * batch);
      const alone = routeTokens(probs(mine), group, batch, experts, k);
      for (let j = 0; j < k; j++) {
        for (let t = 0; t < group * batch; t++) {
          const dropped = (r: typeof alone, at: number) => r.slot[at]! < 0;
          expect(grouped.choice[j * tokens * batch + chunk * group * batch + t]).toBe(alone.choice[j * group * batch + t]);
          expect(dropped(grouped, j * tokens * batch + chunk * group * batch + t)).toBe(dropped(alone, j * group * batch + t));
        }
      }
    }
    // Groups change what is dropped: with every token preferring expert 0, each group keeps its own first two.
    const same = probs(Array.from({ length: tokens }, () => [0.4, 0.3, 0.2, 0.1]));
    expect([...routeTokens(same, tokens, 1, experts, k, group).slot.subarray(0, tokens)].map((s) => s >= 0)).toEqual([true, true, false, false, true, true, false, false]);
    expect([...routeTokens(same, tokens, 1, experts, k).slot.subarray(0, tokens)].map((s) => s >= 0)).toEqual([true, true, true, true, false, false, false, false]);
  });
});

describe("what the executor runs of a mixture of experts (validate.ts)", () => {
  const moe = loadModel("tiny-moe");
  const plan = (gpus: number, input: PlanInput) => resolvePlan(moe, shapeOf("dgx-h100", gpus), { globalBatch: 4, flashAttention: false, ...input });
  it("runs every expert on every rank under data and pipeline parallel, or the experts split over ep ranks", () => {
    expect(() => validateForExecutor(moe, plan(2, { dp: 2, zero: 3 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(2, { pp: 2, schedule: "1f1b" }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(2, { dp: 2, ep: 2, zero: 1 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(4, { dp: 2, pp: 2, ep: 2 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(4, { dp: 4, ep: 2 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(2, { pp: 2, schedule: "zb-h1" }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(2, { tp: 2 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(2, { cp: 2 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(2, { cp: 2, ep: 2 }))).not.toThrow();
    // tp and ep together (Megatron-Core's alltoall dispatcher), under a zero-bubble schedule too
    expect(() => validateForExecutor(moe, plan(4, { tp: 2, dp: 2, ep: 2 }))).not.toThrow();
    expect(() => validateForExecutor(moe, plan(8, { tp: 2, dp: 2, ep: 2, pp: 2, schedule: "zb-h1" }))).not.toThrow();
  });
  it("refuses what it does not run, naming the field, the value and what is valid", () => {
    expect(() => validateForExecutor(moe, plan(2, { tp: 2, sequenceParallel: false }))).toThrow(/sequenceParallel.*= false.*valid: true for a mixture-of-experts model with tp > 1/);
    // tp 4 with ep leaves 8 positions a tp rank: with 16 experts, top 1, half a token per expert.
    const sixteen = { ...moe, moe: { experts: 16, topK: 1 } };
    const tp4 = resolvePlan(sixteen, shapeOf("dgx-h100", 8), { globalBatch: 4, flashAttention: false, tp: 4, dp: 2, ep: 2 });
    expect(() => validateForExecutor(sixteen, tp4)).toThrow(/tp.*= 4.*valid: a divisor of the 32 positions per context-parallel rank that leaves a multiple of 16 per tp rank/);
    // cp 16 leaves 2 positions a rank: 2 x 2 / 4 = 1 token per expert, whole. With 16 experts, top 1, cp 4
    // leaves 8: half a token.
    expect(() => validateForExecutor(moe, plan(16, { cp: 16 }))).not.toThrow();
    const cp4 = resolvePlan(sixteen, shapeOf("dgx-h100", 4), { globalBatch: 4, flashAttention: false, cp: 4 });
    expect(() => validateForExecutor(sixteen, cp4)).toThrow(/cp.*= 4.*valid: a divisor of seqLen\(32\) that leaves a multiple of 16 positions per rank/);
    expect(() => validateForExecutor(moe, plan(1, { seqLen: 31 }))).toThrow(/seqLen.*= 31.*valid: a multiple of 2/);
  });
});
