import type { Tensor } from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { backwardChunk, forwardChunk, type ParamProvider } from "../../src/executor/model/chunk.js";
import { soloGroup, type Grads, type ModelContext } from "../../src/executor/model/context.js";
import { initialParameters, TokenSource, tokenSlice } from "../../src/executor/model/data.js";
import { modelUnits } from "../../src/executor/model/layout.js";
import { product, readNow, type Tf } from "../../src/executor/model/ops.js";
import { alibiSlopes } from "../../src/executor/model/attention.js";
import { routeTokens } from "../../src/executor/model/routing.js";
import { loadBackend } from "../../src/executor/run/backend.js";
import type { ModelSpec } from "../../src/spec/types.js";
import { loadModel } from "../../src/cli/catalog.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend("wasm", 1)).tf;
  await import("@tensorflow/tfjs"); // registers the gradients tf.grads needs (the executor itself needs none)
});

/** An independent, straightforward forward of the whole model for tf.grads (autodiff) to differentiate. */
function autodiffLoss(model: ModelSpec, P: Record<string, Tensor>, ids: Int32Array, targets: Int32Array, b: number): Tensor {
  const s = ids.length / b;
  const h = model.hiddenSize;
  const d = model.headDim;
  const V = model.vocabSize;
  const oh = (x: Int32Array) => tf.cast(tf.oneHot(tf.tensor1d(x, "int32"), V), "float32");
  const ln = (x: Tensor, n: string) => {
    const xc = model.norm === "layernorm" ? tf.sub(x, tf.mean(x, 1, true)) : x;
    const y = tf.mul(xc, tf.rsqrt(tf.add(tf.mean(tf.square(xc), 1, true), 1e-5)));
    const g = tf.mul(y, P[`${n}.g`]!);
    return model.norm === "layernorm" ? tf.add(g, P[`${n}.b`]!) : g;
  };
  const rope = (x: Tensor, nh: number) => {
    const half = d / 2;
    const ang = Array.from({ length: s * d }, (_, k) => Math.floor(k / d) / 10000 ** ((2 * ((k % d) % half)) / d));
    const cos = tf.reshape(tf.tensor(ang.map(Math.cos)), [s, 1, 1, d]);
    const sin = tf.reshape(tf.tensor(ang.map(Math.sin)), [s, 1, 1, d]);
    const x4 = tf.reshape(x, [s, b, nh, d]);
    const [x1, x2] = tf.split(x4, 2, 3);
    return tf.reshape(tf.add(tf.mul(x4, cos), tf.mul(tf.concat([tf.neg(x2!), x1!], 3), sin)), [s * b, nh * d]);
  };
  const repeat = (x: Tensor) => {
    const g = model.attentionHeads / model.kvHeads;
    return g === 1 ? x : tf.concat(Array.from({ length: model.attentionHeads }, (_, j) => tf.slice(x, [0, Math.floor(j / g), 0, 0], [b, 1, s, d])), 1);
  };
  const lin = (x: Tensor, n: string) => (P[`${n}.b`] ? tf.add(tf.matMul(x as never, P[`${n}.w`]! as never), P[`${n}.b`]!) : tf.matMul(x as never, P[`${n}.w`]! as never));
  let x = tf.matMul(oh(ids), P["embed.word"]! as never);
  if (P["embed.pos"]) x = tf.reshape(tf.add(tf.reshape(x, [s, b, h]), tf.reshape(tf.slice(P["embed.pos"]!, [0, 0], [s, h]), [s, 1, h])), [s * b, h]);
  if (model.embeddingNorm === true) x = ln(x, "embed.norm");
  const heads = (t: Tensor, nh: number) => tf.transpose(tf.reshape(t, [s, b, nh, d]), [1, 2, 0, 3]);
  // ALiBi written out for 4 heads (Press et al. 2022: slopes 1/4, 1/16, 1/64, 1/256), key minus query position.
  const slopes = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8];
  const mask = model.positionEmbedding === "alibi"
    ? tf.tensor(Array.from({ length: 4 * s * s }, (_, k) => {
      const [hd, i, j] = [Math.floor(k / (s * s)), Math.floor(k / s) % s, k % s];
      return j > i ? -1e9 : slopes[hd]! * (j - i);
    }), [4, s, s])
    : tf.tensor(Array.from({ length: s * s }, (_, k) => (k % s > Math.floor(k / s) ? -1e9 : 0)), [s, s]);
  for (let l = 0; l < model.layers; l++) {
    const n = `layers.${l}`;
    const a = ln(x, `${n}.ln1`);
    const isRope = model.positionEmbedding === "rope";
    const qp = lin(a, `${n}.attn.q`);
    const kp = lin(a, `${n}.attn.k`);
    const q = heads(isRope ? rope(qp, model.attentionHeads) : qp, model.attentionHeads);
    const k = repeat(heads(isRope ? rope(kp, model.kvHeads) : kp, model.kvHeads));
    const v = repeat(heads(lin(a, `${n}.attn.v`), model.kvHeads));
    const p = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)), mask));
    const o = tf.reshape(tf.transpose(tf.matMul(p, v), [2, 0, 1, 3]), [s * b, h]);
    x = tf.add(x, lin(o, `${n}.attn.o`));
    const bn = ln(x, `${n}.ln2`);
    const mlp = (input: Tensor, m: string) => {
      const u = lin(input, `${m}.up`);
      const gate = model.mlp === "swiglu" ? lin(input, `${m}.gate`) : undefined;
      const g = gate !== undefined
        ? tf.mul(tf.mul(gate, tf.sigmoid(gate)), u)
        : tf.mul(tf.mul(u, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(u, tf.mul(tf.pow(u, 3), 0.044715)), Math.sqrt(2 / Math.PI)))));
      return lin(g, `${m}.down`);
    };
    if (model.moe === undefined) {
      x = tf.add(x, mlp(bn, `${n}.mlp`));
      continue;
    }
    // A mixture of experts as GShard writes it: each expert's input is a one-hot dispatch matrix times the
    // tokens, and each token gets back its experts' outputs times their router probabilities (the route,
    // which autodiff does not differentiate, from the same probabilities).
    const probs = tf.softmax(tf.matMul(bn as never, P[`${n}.moe.router.w`]! as never));
    const route = routeTokens(probs.dataSync() as Float32Array, s, b, model.moe.experts, model.moe.topK);
    for (let e = 0; e < model.moe.experts; e++) {
      const dispatch = tf.tensor(Array.from({ length: route.perExpert * s * b }, (_, i) => {
        const copy = route.source[e * route.perExpert + Math.floor(i / (s * b))]!;
        return copy >= 0 && copy % (s * b) === i % (s * b) ? 1 : 0;
      }), [route.perExpert, s * b]);
      const back = tf.matMul(dispatch, mlp(tf.matMul(dispatch, bn as never), `${n}.moe.${e}`) as never, true, false);
      x = tf.add(x, tf.mul(back, tf.slice(probs, [0, e], [s * b, 1])));
    }
  }
  const logits = tf.matMul(ln(x, "final.norm") as never, (model.tiedEmbeddings ? tf.transpose(P["embed.word"]!) : P["head.w"]!) as never);
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.sum(tf.mul(logp, oh(targets))));
}

describe("ALiBi's slopes", () => {
  it("are 2^(-8i/n) for n a power of two, and for other n that sequence for the power below, then the odd terms of the next", () => {
    expect(alibiSlopes(8)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i));
    expect(alibiSlopes(4)).toEqual([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]);
    // 12 heads: 8 from 2^-1 on, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 (BLOOM's build_alibi_tensor for 12 heads)
    expect(alibiSlopes(12)).toEqual([...[1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i), 2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]);
  });
});

const VARIANTS: [string, Partial<ModelSpec>][] = [
  ["tiny-gpt, untied embeddings", {}],
  ["tiny-gpt, tied embeddings", { tiedEmbeddings: true }],
  ["Llama-style: RMSNorm, SwiGLU, rotary positions, 2 KV heads for 4 query heads, no biases", {
    norm: "rmsnorm", mlp: "swiglu", positionEmbedding: "rope", kvHeads: 2, linearBias: false, qkvBias: false, ffnHiddenSize: 96,
  }],
  ["Qwen-style: biases on Q, K and V only", { norm: "rmsnorm", mlp: "swiglu", positionEmbedding: "rope", linearBias: false, qkvBias: true }],
  // Without biases: the K bias's gradient is zero in exact arithmetic (a shift of every key's score by the
  // same amount per query), so its float32 value is rounding noise that a relative check cannot judge.
  ["BLOOM-style: ALiBi, no position table, a norm after the embedding, tied embeddings", { positionEmbedding: "alibi", embeddingNorm: true, tiedEmbeddings: true, linearBias: false }],
  ["a mixture of 4 experts, top 2 (tiny-moe)", { moe: { experts: 4, topK: 2 } }],
  ["a mixture of 4 SwiGLU experts without biases, top 1", { moe: { experts: 4, topK: 1 }, mlp: "swiglu", norm: "rmsnorm", linearBias: false, ffnHiddenSize: 96 }],
];

describe("the hand-written backward", () => {
  for (const [name, change] of VARIANTS) {
    it(`matches TensorFlow.js autodiff: ${name}`, () => {
      const model = { ...loadModel("tiny-gpt"), seqLen: 8, ...change };
      const plan = resolvePlan(model, shapeOf("dgx-h100", 1), { globalBatch: 2, microBatch: 2 });
      const init = initialParameters(model, 7);
      const units = modelUnits(model);
      const params = new Map([...init].map(([k, v]) => [k, tf.tensor(v, units.flatMap((u) => u.tensors).find((t) => t.name === k)!.shape as number[])]));
      const got: Grads = new Map();
      const provider: ParamProvider = {
        acquire: () => ({ get: (n) => params.get(n)!, maybe: (n) => params.get(n) }),
        release: () => {},
        accept: (_u, g) => { for (const [k, t] of g) got.set(k, got.has(k) ? tf.add(got.get(k)!, t) : t); },
      };
      const data = new TokenSource(model, plan.seqLen, 3, 2).tokens(0, tokenSlice(plan, 0, 0, 0));
      const ctx = (kept: Tensor[]): ModelContext => ({
        tf, model, batch: 2, tokens: 8, pos0: 0, stepTokens: 16, tp: soloGroup(tf), cp: soloGroup(tf), sp: false,
        save: (t) => { kept.push(tf.keep(t)); return t; },
      });
      const fwd = forwardChunk(units, provider, null, data, ctx);
      backwardChunk(units, provider, fwd.activations, null, data, ctx([]));
      const names = [...params.keys()];
      const lossFn = (...xs: Tensor[]) => autodiffLoss(model, Object.fromEntries(names.map((n, i) => [n, xs[i]!])), data.ids, data.targets, 2);
      const ref = lossFn(...names.map((n) => params.get(n)!)).dataSync()[0]! / 16;
      expect(fwd.loss).toBeCloseTo(ref, 5);
      const grads = tf.grads(lossFn)(names.map((n) => params.get(n)!));
      names.forEach((n, i) => {
        const want = tf.div(grads[i]!, 16).dataSync();
        const have = got.get(n)!.dataSync();
        const scale = Math.max(1e-6, ...Array.from(want, Math.abs));
        const err = Math.max(...Array.from(want, (w, j) => Math.abs(w - have[j]!))) / scale;
        expect(err, n).toBeLessThan(1e-4);
      });
    });
  }
});

describe("products with a transposed operand (ops.ts product)", () => {
  it("equal TensorFlow.js's own transposed products, for either operand", () => {
    const a = tf.randomNormal([32, 64], 0, 1, "float32", 7);
    const b = tf.randomNormal([32, 48], 0, 1, "float32", 8);
    const w = tf.randomNormal([48, 64], 0, 1, "float32", 9);
    const close = (x: Tensor, y: Tensor) => {
      expect(x.shape).toEqual(y.shape);
      const d = tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]!;
      expect(d).toBeLessThan(1e-4);
    };
    close(product(tf, a, b, true, false), tf.matMul(a as never, b as never, true, false));
    close(product(tf, b, w, false, false), tf.matMul(b as never, w as never));
    close(product(tf, a, w, false, true), tf.matMul(a as never, w as never, false, true));
    close(product(tf, w, b, true, true), tf.matMul(w as never, b as never, true, true));
  });
});

describe("the cross-entropy calibrate times (ends.ts, measure/loss.ts)", () => {
  it("is the head's loss: the mean negative log-softmax at the targets, and (softmax - one-hot) / tokens backward", async () => {
    const { crossEntropyBackward, crossEntropyForward } = await import("../../src/executor/model/ends.js");
    const ctx = { tf, tp: soloGroup(tf), stepTokens: 6, model: { vocabSize: 5 } };
    const logits = tf.randomNormal([6, 5], 0, 2, "float32", 11);
    const targets = Int32Array.from([0, 4, 2, 2, 1, 3]);
    const logSoftmax = tf.logSoftmax(logits).arraySync() as number[][];
    const expected = -logSoftmax.reduce((a, row, i) => a + row[targets[i]!]!, 0) / 6;
    const softmax = tf.softmax(logits);
    const { loss, probs } = crossEntropyForward(ctx, tf.clone(logits), targets);
    expect(loss).toBeCloseTo(expected, 5);
    const d = crossEntropyBackward(ctx, probs, targets).arraySync() as number[][];
    const p = softmax.arraySync() as number[][];
    d.forEach((row, i) => row.forEach((x, j) => expect(x).toBeCloseTo((p[i]![j]! - (j === targets[i] ? 1 : 0)) / 6, 6)));
  });

  it("is timed on the executor's own backend: a positive, finite time per call", async () => {
    const { lossSeconds } = await import("../../src/executor/measure/loss.js");
    const seconds = lossSeconds(tf, 32, 64, 2);
    expect(Number.isFinite(seconds)).toBe(true);
    expect(seconds).toBeGreaterThan(0);
  });
});

describe("reading a tensor's values for a copy out (ops.ts readNow)", () => {
  const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer;
  it("on the wasm backend, reads the values where they lie in its heap, for a fresh tensor, a reshape and an op's output", () => {
    expect(tf.getBackend()).toBe("wasm");
    const x = tf.randomUniform([64, 48], -1, 1, "float32", 7);
    const y = tf.reshape(x, [48, 64]);
    const z = tf.matMul(x, tf.transpose(x));
    for (const t of [x, y, z]) {
      const view = readNow(tf, t);
      const copy = t.dataSync() as Float32Array;
      expect(view.length).toBe(copy.length);
      expect(Array.from(view)).toEqual(Array.from(copy));
      // a view of the heap, not dataSync's fresh buffer
      expect(view.buffer).toBe(heap());
    }
  });

  it("for other dtypes, is dataSync (a fresh buffer)", () => {
    const ints = tf.tensor([1, 2, 3], [3], "int32");
    expect(Array.from(readNow(tf, ints))).toEqual([1, 2, 3]);
    expect(readNow(tf, ints).buffer).not.toBe(heap());
  });
});
