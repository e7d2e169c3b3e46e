import type { ModelSpec, Plan } from "../../spec/types.js";
import { EQUAL_PASSES, zbvOrder, type VPassRatios } from "./zb-v.js";

/**
 * Activation memory that one transformer layer keeps for its backward pass, for one micro-batch on one
 * GPU, counted tensor by tensor as Korthikanti et al. 2022 (section 4.1) do: 16-bit tensors take 2 bytes
 * per element, dropout masks 1 byte. For a GPT (MHA, 4h GeLU MLP, dropout, no flash attention) the sum is
 * exactly their s*b*h*(34 + 5*a*s/h) and its tensor-parallel and sequence-parallel forms (eq. 1-4;
 * test/planner/activations.test.ts). The counting generalises to GQA (smaller K and V), SwiGLU (two saved
 * projections), MoE (topK routed copies), context parallel (sequence split over cp) and flash attention
 * (no s x s tensors; the fp32 log-sum-exp per row instead, Dao et al. 2022, algorithm 2).
 *
 * Under fp8, Transformer Engine's linears keep for their weight gradient only the fp8 cast of their input,
 * 1 byte per element (transformer_engine/pytorch/module/linear.py; layernorm_linear.py keeps the norm's
 * 16-bit input for its own backward and its fp8 output): the QKV and FC1 inputs and the FC2 input take 1
 * byte, and the output projection keeps an fp8 copy of the attention output beside the 16-bit one the
 * attention kernel saved (2 + 1). The FC1 output stays 16-bit (Megatron-Core's SwiGLU saves its input
 * unless activation_func_fp8_input_store). plan.fp8Keep16BitInputs: torchao's Float8Linear, which saves
 * the 16-bit input (torchao/float8/float8_linear.py, matmul_with_hp_or_float8_args), as under bf16.
 */
export interface LayerActivationBytes {
  /** Everything kept when nothing is recomputed. */
  readonly none: number;
  /** Attention core recomputed (Korthikanti et al. 2022, section 4.2): the s x s tensors are dropped. */
  readonly selective: number;
  /** Only the layer's input is kept (Chen et al. 2016 checkpointing; Korthikanti et al. 2022, Table 2). */
  readonly full: number;
}

export const BYTES_16 = 2;
const BYTES_MASK = 1;
const BYTES_FP8 = 1;
const BYTES_FP32 = 4;

/** KV heads a tensor-parallel rank holds: split when there are enough, else one replicated head. */
function kvHeadsPerRank(model: ModelSpec, tp: number): number {
  return model.kvHeads >= tp ? model.kvHeads / tp : 1;
}

/**
 * Per token, the widths of one tensor-parallel rank's attention projections: its queries (`q`), one of its
 * keys or values (`kv`), and the fused QKV output (`qkv` = q + 2 kv).
 */
export function attentionWidthsPerRank(model: ModelSpec, tp: number): { q: number; kv: number; qkv: number } {
  const q = (model.attentionHeads * model.headDim) / tp;
  const kv = kvHeadsPerRank(model, tp) * model.headDim;
  return { q, kv, qkv: q + 2 * kv };
}

export function layerActivationBytes(model: ModelSpec, plan: Plan): LayerActivationBytes {
  const t = plan.tp;
  const r = plan.sequenceParallel ? t : 1; // regions outside tensor parallel are split only with SP
  const x = (plan.microBatch * plan.seqLen) / plan.cp; // tokens of one micro-batch on this rank
  const s = plan.seqLen;
  const h = model.hiddenSize;
  const { q, kv } = attentionWidthsPerRank(model, t);
  const headsPerRank = model.attentionHeads / t;
  const drop = model.dropout;
  const k = model.moe?.topK ?? 1;
  const f = model.ffnHiddenSize / t;
  // What a linear keeps of its input for the weight gradient, and the extra fp8 copy of the attention output.
  const fp8Inputs = plan.precision === "fp8" && plan.fp8Keep16BitInputs !== true;
  const linearIn = fp8Inputs ? BYTES_FP8 : BYTES_16;
  const projCopy = fp8Inputs ? BYTES_FP8 * x * q : 0;

  // Attention block: norm input, QKV input, Q, K, V, output-projection input, dropout mask.
  const attnLinear =
    BYTES_16 * x * h / r + linearIn * x * h / r + BYTES_16 * x * (q + 2 * kv) + BYTES_16 * x * q + projCopy + (drop ? BYTES_MASK * x * h / r : 0);
  // Scores: softmax output, and with dropout its mask and output (the 5*a*s^2*b of Korthikanti et al.).
  const scores = headsPerRank * x * s * (BYTES_16 + (drop ? BYTES_MASK + BYTES_16 : 0));
  const core = plan.flashAttention ? BYTES_FP32 * headsPerRank * x : scores;
  // MLP block: norm input, FC1 input (routed copies for MoE), FC1 output(s), FC2 input, dropout mask.
  // Sequence parallel keeps a dense FC1's input split over tp (its backward gathers it again); a mixture of
  // experts' FC1 input is its routed copies, gathered whole on every tp rank by either Megatron-Core token
  // dispatcher (allgather: the layer's input gathered, then permuted; alltoall: the copies gathered over tp
  // after the ep exchange, moe/token_dispatcher.py) and kept so for the experts' weight gradients.
  const fc1Outputs = model.mlp === "swiglu" ? 2 : 1;
  const router = model.moe === undefined ? 0 : BYTES_FP32 * x * model.moe.experts / r;
  const fc1Input = model.moe === undefined ? linearIn * x * h / r : linearIn * x * k * h;
  const mlp =
    BYTES_16 * x * h / r + fc1Input + BYTES_16 * x * k * f * fc1Outputs + linearIn * x * k * f +
    (drop ? BYTES_MASK * x * h / r : 0) + router;

  const none = attnLinear + core + mlp;
  const selective = plan.flashAttention ? none : none - scores;
  return { none, selective, full: BYTES_16 * x * h / r };
}

/**
 * What a split backward (ZB-H1) keeps from one micro-batch's B to its W on one layer, 16-bit: each linear's
 * output gradient, and under sequence parallel the inputs of the column-parallel linears gathered again
 * (Qi et al. 2023's implementation puts every linear's input and output gradient in its WeightGradStore;
 * the other inputs are activations the layer keeps anyway): Q, K and V's x (q + 2 kv), the attention output
 * projection's x h, the MLP's first matrix output(s) x k f (two for SwiGLU), its second x k h, and with SP
 * the QKV and FC1 inputs, x h each.
 */
export function weightGradInputBytes(model: ModelSpec, plan: Plan): number {
  const t = plan.tp;
  const sp = plan.sequenceParallel && t > 1;
  const x = (plan.microBatch * plan.seqLen) / plan.cp;
  const h = model.hiddenSize;
  const { q, kv } = attentionWidthsPerRank(model, t);
  const k = model.moe?.topK ?? 1;
  const f = model.ffnHiddenSize / t;
  const up = model.mlp === "swiglu" ? 2 : 1;
  return BYTES_16 * x * (q + 2 * kv + h + k * up * f + k * h + (sp ? 2 * h : 0));
}

/** Bytes one layer keeps under a recompute mode that is not `full`. */
export function keptBytes(a: LayerActivationBytes, plan: Plan): number {
  return plan.recompute === "selective" ? a.selective : a.none;
}

/**
 * Micro-batches whose activations stage `stage` holds at its peak, by schedule. Counts are in units of
 * one micro-batch through the whole stage (interleaved chunks are converted).
 * - 1F1B: min(p - i, m) (Narayanan et al. 2021, section 2.2.1); ZB-H1: min(p, m) on every stage (deferred W passes),
 *   the same worst-stage peak as 1F1B (Qi et al. 2023).
 * - Interleaved: stage i runs 2(p - i - 1) + (v - 1)p warm-up chunks plus one (Megatron-LM schedules.py),
 *   each holding 1/v of the stage; for i = 0 this is p(1 + (p - 1)/(p v)) micro-batches (Korthikanti et al., eq. 5 note).
 * - ZB-V: read off its order (zb-v.ts): min(2p, 2m) chunks of half a stage, p micro-batches where m >= p,
 *   1F1B's worst stage (Qi et al. 2023: ZB-V's activation memory is 1F1B's).
 * - GPipe: all m; naive model parallel: one.
 */
export function inFlightMicroBatches(plan: Plan, stage: number, microBatches: number, vRatios: VPassRatios = EQUAL_PASSES): number {
  const p = plan.pp;
  const m = microBatches;
  switch (plan.schedule) {
    case "naive":
      return 1;
    case "gpipe":
      return m;
    case "1f1b":
      return Math.min(p - stage, m);
    case "zb-h1":
      // Stage i defers up to i weight-gradient passes, each holding its micro-batch until it runs, so every
      // stage may hold min(p, m); the worst stage, and so the peak, is 1F1B's (Qi et al. 2023, Table 1: pM_B).
      return Math.min(p, m);
    case "interleaved": {
      const v = plan.virtualStages;
      const chunks = Math.min(2 * (p - stage - 1) + (v - 1) * p + 1, m * v);
      return chunks / v;
    }
    case "zb-v":
      // Read off the schedule's order: at most 2p chunks held until their W (zb-v.ts), min(2p, 2m).
      return zbvOrder(p, m, vRatios).heldChunks[stage]! / plan.virtualStages;
  }
}

