import { microBatchCount } from "../../spec/plan.js";
import type { ModelSpec, Plan } from "../../spec/types.js";
import { blockOf } from "../comm/fabric.js";
import { alltoallExperts, chunkUnits, headKeepsTiedCopy, recomputedLayers, unitSlots, type UnitSpec } from "../model/layout.js";
import { coordsOf, epRankOf, tiedCopyFloats } from "../parallel/grid.js";
import { replicatedCount } from "../parallel/sp-sync.js";
import { stageSchedule } from "../parallel/schedule.js";
import { crossingsOfStage, holdsHead } from "../../spec/virtual-stages.js";

/**
 * What the executor's algorithms send, per rank per step, in float32 elements, by purpose: derived from
 * the algorithms (not measured), so that a test can require the measured bytes to equal 4 x these
 * exactly. src/executor/README.md maps each purpose onto the cost model's terms.
 * Per collective over g ranks of a buffer of n elements of which this rank owns block b:
 * all-reduce n + (g - 2) b, reduce-scatter n - b, all-gather (g - 1) b, send n (see comm/traffic.ts).
 */
export type PurposeElements = Record<string, number>;

const ar = (n: number, g: number, j: number) => (g <= 1 ? 0 : n + (g - 2) * size(blockOf(n, g, j)));
const rs = (n: number, g: number, j: number) => (g <= 1 ? 0 : n - size(blockOf(n, g, j)));
const ag = (n: number, g: number, j: number) => (g <= 1 ? 0 : (g - 1) * size(blockOf(n, g, j)));
function size(b: { first: number; end: number }): number {
  return b.end - b.first;
}

function add(out: PurposeElements, purpose: string, n: number): void {
  if (n !== 0) out[purpose] = (out[purpose] ?? 0) + n;
}

/** The units of stage `stage`, chunk by chunk. */
function stageChunks(model: ModelSpec, plan: Plan, stage: number): UnitSpec[][] {
  return Array.from({ length: plan.virtualStages }, (_, c) => chunkUnits(model, plan, stage, c));
}

export function expectedElements(model: ModelSpec, plan: Plan, rank: number): PurposeElements {
  const out: PurposeElements = {};
  const c = coordsOf(plan, rank);
  const m = microBatchCount(plan);
  const t = plan.tp;
  const sp = plan.sequenceParallel;
  const rows = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  const chunks = stageChunks(model, plan, c.pp);
  const units = chunks.flat();
  const layers = units.filter((u) => u.kind === "layer").length;
  const first = c.pp === 0;
  const last = holdsHead(plan, c.pp);
  const act = rows * h;

  // Tensor parallel, per micro-batch: each layer's two row-parallel reductions forward and its two
  // input-gradient reductions backward (SP: each an all-gather and a reduce-scatter).
  const pair = sp ? ag(act, t, c.tp) + rs(act, t, c.tp) : ar(act, t, c.tp);
  // A fully recomputed layer runs its forward, and its two reductions, again in the backward.
  const recomputed = plan.recomputeLayersPerStage[c.pp] ?? 0;
  // With ep as well (model/moe.ts alltoallDispatch), a mixture of experts' half of the layer all-gathers
  // the rows its experts received and reduce-scatters their outputs, x k h each (backward: their
  // gradients), in place of the dense MLP's pair and its re-gather.
  const dispatched = alltoallExperts(model, plan);
  const halves = dispatched ? 1 : 2;
  add(out, "tp.layer", m * (layers * 2 * halves + recomputed * halves) * pair);
  if (dispatched) {
    const copies = rows * model.moe!.topK * h;
    add(out, "tp.moe", m * (layers * 2 + recomputed) * (ag(copies, t, c.tp) + rs(copies, t, c.tp)));
  }
  if (first && units.some((u) => u.kind === "embed")) add(out, "tp.embedding", m * (sp ? rs(act, t, c.tp) + ag(act, t, c.tp) : ar(act, t, c.tp)));
  if (last) {
    add(out, "tp.head", m * (sp ? ag(act, t, c.tp) + rs(act, t, c.tp) : ar(act, t, c.tp)));
    add(out, "tp.vocab-ce", m * 3 * ar(rows, t, c.tp));
    if (sp) add(out, "tp.sp-regather", m * ag(act, t, c.tp));
  }
  if (sp) add(out, "tp.sp-regather", m * layers * halves * ag(act, t, c.tp));

  // Context parallel: K and V gathered forward and backward, their gradients reduce-scattered backward.
  const kv = rows * (model.kvHeads / t) * model.headDim;
  const cpg = plan.cp;
  add(out, "cp.kv", m * (layers * (4 * ag(cpg * kv, cpg, c.cp) + 2 * rs(cpg * kv, cpg, c.cp)) + recomputed * 2 * ag(cpg * kv, cpg, c.cp)));

  // Pipeline: an activation forward out of every chunk but the model's last, a gradient backward out of
  // every chunk but its first, where the next (previous) chunk is on another stage (ZB-V's turn is not).
  const pipe = act / (sp ? t : 1);
  if (plan.pp > 1) {
    const x = crossingsOfStage(plan, c.pp);
    add(out, "pp.activation", m * x.forwardSends * pipe);
    add(out, "pp.gradient", m * x.backwardSends * pipe);
    // A tied embedding's two copies (the first stage's and the head's): their gradients summed once per step.
    if (headKeepsTiedCopy(model, plan) && (first || last)) add(out, "pp.tied-grad", ar(tiedCopyFloats(model, plan), 2, first ? 0 : 1));
  }

  // Expert parallel: each layer's experts' two all-to-alls forward and two backward (and the forward's
  // again in a fully recomputed layer's backward), every token copy's row, x k h (model/moe.ts).
  if (plan.ep > 1 && model.moe !== undefined) {
    // With tp as well each tp rank sends its own rows' copies (alltoallExperts).
    const copies = (rows * model.moe.topK * h) / (dispatched ? t : 1);
    add(out, "ep.moe", m * (layers * 4 + recomputed * 2) * rs(copies, plan.ep, epRankOf(plan, c)));
  }

  // Data parallel over dp x cp, unit by unit (ZeRO), or the parameter-server push; under expert
  // parallelism a layer's experts over the ranks that hold the same ones (edp: dp x cp / ep of them, this
  // rank's place among them its data-parallel index over ep).
  const sizes = units.map((u) => unitSlots(u, t).size);
  if (plan.parameterServers > 0) add(out, "dp.ps-push", sizes.reduce((a, b) => a + b, 0));
  if (plan.parameterServers === 0) {
    for (const [k, n] of sizes.entries()) {
      const experts = units[k]!.kind === "experts" && plan.ep > 1;
      const g = (plan.dp * plan.cp) / (experts ? plan.ep : 1);
      const j = experts ? Math.floor((c.cp + plan.cp * c.dp) / plan.ep) : c.cp + plan.cp * c.dp;
      if (plan.zero === 0) add(out, "dp.grads", ar(n, g, j));
      if (plan.zero === 1) add(out, "dp.grads", rs(n, g, j));
      if (plan.zero >= 2) add(out, "dp.zero-grad", m * rs(n, g, j));
      if (plan.zero === 1 || plan.zero === 2) add(out, "dp.zero-gather", ag(n, g, j));
      if (plan.zero === 3) add(out, "dp.zero3-gather", 2 * m * ag(n, g, j));
    }
  }

  // Sequence parallel: the tp-replicated weights' gradients, whole, summed over tp once per step.
  if (sp && t > 1) add(out, "tp.sp-grad-sync", ar(units.reduce((a, u) => a + replicatedCount(unitSlots(u, t)), 0), t, c.tp));
  return out;
}

/** Blocking collectives of one micro-batch, by pass. */
export interface PassCalls {
  readonly forward: number;
  readonly backward: number;
}

/**
 * The blocking collectives of one micro-batch on pipeline stage `stage`, forward and backward (all chunks),
 * per group: what the executor's model code calls (model/layer.ts, model/ends.ts), as expectedElements
 * counts their bytes. Per layer, tensor parallel: forward 2 reductions (SP: 2 reduce-scatters and 2
 * all-gathers), backward 2 input-gradient reductions (SP: 2 all-gathers of output gradients, 2
 * reduce-scatters and 2 re-gathers); context parallel: K and V gathered forward, gathered again and their
 * gradients reduce-scattered backward. The embedding reduces its output (SP: and gathers its gradient
 * back); the head gathers its input under SP, all-reduces three numbers per token for the cross-entropy and
 * reduces its input gradient (SP: re-gather and reduce-scatter). The once-per-step sum of SP's replicated
 * gradients is not in a pass (stepSyncCalls).
 */
export function passCalls(model: ModelSpec, plan: Plan, stage: number): { readonly tp: PassCalls; readonly cp: PassCalls; readonly ep: PassCalls } {
  const units = stageChunks(model, plan, stage).flat();
  const layers = units.filter((u) => u.kind === "layer").length;
  const recomputed = plan.recomputeLayersPerStage[stage] ?? 0;
  const sp = plan.sequenceParallel;
  let tp: PassCalls = { forward: 0, backward: 0 };
  if (plan.tp > 1) {
    const embed = units.some((u) => u.kind === "embed");
    const head = units.some((u) => u.kind === "head");
    // The alltoall dispatcher's experts (alltoallExperts): backward, the copies' all-gather and
    // reduce-scatter, no re-gather of the MLP input (SP: 5 a layer, not 6).
    const regathers = alltoallExperts(model, plan) ? 1 : 2;
    tp = {
      forward: layers * (sp ? 4 : 2) + (embed ? 1 : 0) + (head ? (sp ? 1 : 0) + 3 : 0),
      backward: layers * (sp ? 4 + regathers : 2) + recomputed * (sp ? 4 : 2) + (embed && sp ? 1 : 0) + (head ? (sp ? 2 : 1) : 0),
    };
  }
  const cp = plan.cp > 1 ? { forward: 2 * layers, backward: 4 * layers + 2 * recomputed } : { forward: 0, backward: 0 };
  // A mixture of experts' all-to-alls: dispatch and combine forward, their gradients' backward (model/moe.ts).
  const ep = plan.ep > 1 && model.moe !== undefined ? { forward: 2 * layers, backward: 2 * layers + 2 * recomputed } : { forward: 0, backward: 0 };
  return { tp, cp, ep };
}

/** Collectives per step outside the passes, per group: the SP sum of tp-replicated gradients. */
export function stepSyncCalls(plan: Plan): { readonly tp: number; readonly cp: number; readonly ep: number } {
  return { tp: plan.sequenceParallel && plan.tp > 1 ? 1 : 0, cp: 0, ep: 0 };
}

/**
 * Activations one layer keeps for its backward, in float32 elements per micro-batch on one rank, tensor
 * by tensor (model/layer.ts LayerSaved), x = b s / cp tokens, r = tp under SP else 1: norm input and QKV
 * input x h / r each; Q, K, V x (q + 2 kv) / tp; softmax output heads/tp x x s; attention output x q / tp;
 * second norm input and MLP input x h / r each; MLP pre-activation(s) x f / tp (two for SwiGLU); MLP
 * activation x f / tp. These are the cost model's per-layer terms (planner/cost/activations.ts) without
 * dropout and flash attention, which the executor does not have, counted in elements instead of bytes.
 * A mixture of experts (model/moe.ts) keeps, in place of the dense MLP's tensors, the router's
 * probabilities x E, the experts' input rows x k h, their pre-activation(s) x k f (two for SwiGLU) and
 * their activations x k f: the cost model's routed copies, FC1 outputs, FC2 input and router terms; and
 * beyond them the MLP input (the second norm's output, x h), for the router's weight gradient, and the
 * experts' outputs for this rank's copies (x k h), for the gradient of the probabilities that weight them
 * (the cost model counts neither). The same on every rank of an expert-parallel group: each holds E/ep
 * experts of ep x as many rows. With tp as well (alltoallExperts), each rank keeps the probabilities of its
 * own rows (x E / tp), the rows its experts' shards ran on, gathered over tp (x k h), and the outputs for
 * its own copies (x k h / tp).
 */
export function layerActivationElements(model: ModelSpec, plan: Plan): number {
  const t = plan.tp;
  const r = plan.sequenceParallel ? t : 1;
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  const q = (model.attentionHeads * model.headDim) / t;
  const kv = (model.kvHeads * model.headDim) / t;
  const f = model.ffnHiddenSize / t;
  const up = model.mlp === "swiglu" ? 2 : 1;
  // Selective recomputation keeps no scores (model/layer.ts): the cost model's selective term.
  const scores = plan.recompute === "selective" ? 0 : (model.attentionHeads / t) * x * plan.seqLen;
  const moe = model.moe;
  // The alltoall dispatcher (alltoallExperts): the probabilities of this rank's rows x E / tp, the experts'
  // rows gathered over tp x k h, their outputs for this rank's copies x k h / tp.
  const mlp = moe === undefined ? x * f * up + x * f
    : alltoallExperts(model, plan) ? (x * moe.experts) / t + moe.topK * x * (h + h / t + f * up + f)
      : x * moe.experts + moe.topK * x * (2 * h + f * up + f);
  return 4 * (x * h) / r + x * (q + 2 * kv) + scores + x * q + mlp;
}

/**
 * The head keeps the final norm's input and output (x h / r each) and one float32 softmax output per
 * logit (x V / tp) for the cross-entropy backward; the cost model counts 2 + 4 bytes per logit (16-bit
 * logits and Megatron's fp32 copy, planner/cost/memory.ts lossBytes).
 */
export function headActivationElements(model: ModelSpec, plan: Plan): number {
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const r = plan.sequenceParallel ? plan.tp : 1;
  return (2 * x * model.hiddenSize) / r + (x * model.vocabSize) / plan.tp;
}

/**
 * What a split backward (ZB-H1) keeps from B to W beyond the saved activations, in float32 elements per
 * micro-batch (model/layer.ts and model/ends.ts through WeightDeferral.keep): each linear's output gradient
 * and, where it is not a saved activation, its input. Per layer, x = b s / cp tokens: the second MLP
 * matrix's output gradient x h (SP: gathered; else the layer's output gradient itself), the MLP
 * pre-activation gradient(s) x f / tp (two for SwiGLU), the attention output projection's x h (SP:
 * gathered; else the residual's gradient), Q, K and V's x (q + 2 kv) / tp; under SP also the two inputs
 * gathered again (x h each), which are saved activations otherwise. The untied head: the logits' gradient
 * x V / tp (and its input gathered again under SP); the embedding: its output gradient x h.
 */
export function deferredWeightElements(model: ModelSpec, plan: Plan, unit: UnitSpec): number {
  const t = plan.tp;
  const sp = plan.sequenceParallel && t > 1;
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  if (unit.kind === "embed") return x * h;
  if (unit.kind === "head") return model.tiedEmbeddings ? 0 : (x * model.vocabSize) / t + (sp ? x * h : 0);
  const q = (model.attentionHeads * model.headDim) / t;
  const kv = (model.kvHeads * model.headDim) / t;
  const f = model.ffnHiddenSize / t;
  const up = model.mlp === "swiglu" ? 2 : 1;
  if (unit.kind === "experts") return 0; // counted with their layer's, whose backward makes them
  // A mixture of experts (model/moe.ts): for W the experts' output gradients x k h, their pre-activation
  // gradients x k f (two for SwiGLU) and the router logits' gradient x E, in place of the dense MLP's. With
  // tp and ep together (alltoallExperts) the router's are this rank's rows', x E / tp, and its input is the
  // kept MLP input, not gathered again.
  const dispatched = alltoallExperts(model, plan);
  const mlp = model.moe === undefined ? x * h + up * x * f : model.moe.topK * x * (h + up * f) + (x * model.moe.experts) / (dispatched ? t : 1);
  return (sp ? (dispatched ? 3 : 4) : 2) * x * h - x * h + mlp + x * (q + 2 * kv);
}

/**
 * What a fully recomputed layer's split backward hands from its rebuilt forward to W, beyond
 * deferredWeightElements: the linears' inputs that a kept layer saves anyway, the attention output x q / tp
 * and the MLP activation x f / tp, and without SP the two norms' outputs x h (under SP W takes the inputs
 * gathered again, counted there).
 */
export function recomputedWeightInputElements(model: ModelSpec, plan: Plan): number {
  const t = plan.tp;
  const sp = plan.sequenceParallel && t > 1;
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  // A mixture of experts: its experts' activations x k f and inputs x k h in place of the MLP activation;
  // with tp and ep together also the router's input, this rank's rows of the rebuilt MLP input (x h / tp).
  const moe = model.moe;
  const mlp = moe === undefined ? model.ffnHiddenSize / t
    : moe.topK * (model.ffnHiddenSize / t + model.hiddenSize) + (alltoallExperts(model, plan) ? model.hiddenSize / t : 0);
  return x * ((model.attentionHeads * model.headDim) / t + mlp + (sp ? 0 : 2 * model.hiddenSize));
}

/**
 * Peak activation elements of stage `stage`: its schedule walked pass by pass (F keeps a chunk's, B frees
 * it; a split backward's B adds what W needs, and W frees both).
 */
export function peakActivationElements(model: ModelSpec, plan: Plan, stage: number): number {
  const chunks = stageChunks(model, plan, stage);
  const layer = layerActivationElements(model, plan);
  // A fully recomputed layer keeps its input only (x h / r); its backward holds the rest of one layer
  // again while it runs (model/chunk.ts).
  const input = (plan.microBatch * plan.seqLen * model.hiddenSize) / plan.cp / (plan.sequenceParallel ? plan.tp : 1);
  const recomputed = recomputedLayers(plan, stage);
  // A norm after the embedding (BLOOM's) keeps its input, x h / r (model/ends.ts embedForward).
  const embed = model.embeddingNorm === true ? input : 0;
  const perChunk = chunks.map((units) =>
    units.reduce((a, u) => a + (u.kind === "layer" ? (recomputed.has(u.layer) ? input : layer) : u.kind === "head" ? headActivationElements(model, plan) : embed), 0));
  const transientOf = (units: readonly UnitSpec[]) => (units.some((u) => u.kind === "layer" && recomputed.has(u.layer)) ? layer - input : 0);
  const actions = stageSchedule(model, plan, stage, microBatchCount(plan));
  const split = actions.some((a) => a.pass === "W");
  const handed = recomputedWeightInputElements(model, plan);
  const deferredOf = (u: UnitSpec) => deferredWeightElements(model, plan, u) + (u.kind === "layer" && recomputed.has(u.layer) ? handed : 0);
  const deferred = chunks.map((units) => (split ? units.reduce((a, u) => a + deferredOf(u), 0) : 0));
  // A split backward through a recomputed layer holds, at the end of that layer's backward, the rebuilt
  // forward (of which W keeps the linears' inputs), that layer's kept output gradients and what W keeps of
  // the units whose backward ran before it in the chunk (backward order: last unit first).
  const duringB = chunks.map((units) => {
    if (!split) return transientOf(units);
    let before = 0;
    let most = 0;
    for (const u of [...units].reverse()) {
      if (u.kind === "layer" && recomputed.has(u.layer)) most = Math.max(most, before + (layer - input) + deferredWeightElements(model, plan, u));
      before += deferredOf(u);
    }
    return most;
  });
  let live = 0;
  let peak = 0;
  for (const a of actions) {
    if (a.pass === "B") peak = Math.max(peak, live + duringB[a.chunk]!);
    if (a.pass === "F") live += perChunk[a.chunk]!;
    else if (a.pass === "W") live -= perChunk[a.chunk]! + deferred[a.chunk]!;
    else live += split ? deferred[a.chunk]! : -perChunk[a.chunk]!;
    peak = Math.max(peak, live);
  }
  return peak;
}
