import type { ModelSpec, Plan } from "../../spec/types.js";
import { chunkOfVirtual, tiedCopyOnHead, virtualStageOf } from "../../spec/virtual-stages.js";

/**
 * The executor's GPT as a list of parameter tensors grouped into units (the embedding, each layer, the
 * head), each tensor with the axis Megatron splits over tensor-parallel ranks (Shoeybi et al. 2019,
 * section 3): Q/K/V and the first MLP matrix by columns (output features), the attention output and the
 * second MLP matrix by rows (input features), the word embedding by vocabulary rows, the output layer by
 * vocabulary columns. Norms, position embeddings and the biases of row-parallel layers are replicated.
 */
export type Init = "normal" | "zeros" | "ones";

export interface TensorSpec {
  readonly name: string;
  /** Full (unsplit) shape: [rows, cols] or [length]. */
  readonly shape: readonly number[];
  /** The axis split over tensor-parallel ranks; null when every tp rank holds the whole tensor. */
  readonly splitAxis: 0 | 1 | null;
  readonly init: Init;
}

/**
 * A mixture of experts' experts are units of their own, beside their layer's (whose router stays with it):
 * expert parallelism puts a block of them on each rank of an ep group, and their gradients are reduced over
 * another group than the layer's (the cost model's edp).
 */
export type UnitKind = "embed" | "layer" | "experts" | "head";

export interface UnitSpec {
  readonly kind: UnitKind;
  /** Layer index for layers and their experts, -1 otherwise. */
  readonly layer: number;
  readonly name: string;
  readonly tensors: readonly TensorSpec[];
}

/** GPT-2's initialisation: weights from N(0, 0.02), biases zero, norm gains one (Radford et al. 2019). */
export const INIT_STD = 0.02;

function t(name: string, shape: number[], splitAxis: 0 | 1 | null, init: Init): TensorSpec {
  return { name, shape, splitAxis, init };
}

function norm(model: ModelSpec, prefix: string): TensorSpec[] {
  const h = model.hiddenSize;
  const g = t(`${prefix}.g`, [h], null, "ones");
  return model.norm === "layernorm" ? [g, t(`${prefix}.b`, [h], null, "zeros")] : [g];
}

function layerTensors(model: ModelSpec, l: number): TensorSpec[] {
  const h = model.hiddenSize;
  const q = model.attentionHeads * model.headDim;
  const kv = model.kvHeads * model.headDim;
  const p = `layers.${l}`;
  const qkvBias = model.linearBias || model.qkvBias;
  const out: TensorSpec[] = [...norm(model, `${p}.ln1`)];
  out.push(t(`${p}.attn.q.w`, [h, q], 1, "normal"), t(`${p}.attn.k.w`, [h, kv], 1, "normal"), t(`${p}.attn.v.w`, [h, kv], 1, "normal"));
  if (qkvBias) out.push(t(`${p}.attn.q.b`, [q], 0, "zeros"), t(`${p}.attn.k.b`, [kv], 0, "zeros"), t(`${p}.attn.v.b`, [kv], 0, "zeros"));
  out.push(t(`${p}.attn.o.w`, [q, h], 0, "normal"));
  if (model.linearBias) out.push(t(`${p}.attn.o.b`, [h], null, "zeros"));
  out.push(...norm(model, `${p}.ln2`));
  if (model.moe === undefined) return [...out, ...mlpTensors(model, `${p}.mlp`)];
  // A mixture of experts (model/moe.ts): the router's linear layer (no bias) here, the experts' MLPs in their units.
  out.push(t(`${p}.moe.router.w`, [h, model.moe.experts], null, "normal"));
  return out;
}

/** The unit of layer l's experts of block `block` (the block expert-parallel rank `block` holds). */
function expertsUnitName(l: number, block: number): string {
  return `layers.${l}.experts.${block}`;
}

/** Layer l's experts of block `block` of `blocks` (experts block x E/blocks onwards), as one unit. */
function expertsUnit(model: ModelSpec, l: number, block: number, blocks: number): UnitSpec {
  const per = model.moe!.experts / blocks;
  const tensors = Array.from({ length: per }, (_, i) => mlpTensors(model, `layers.${l}.moe.${block * per + i}`)).flat();
  return { kind: "experts", layer: l, name: expertsUnitName(l, block), tensors };
}

/** Whether a gradient's tensor belongs to a layer's experts unit (not to the layer's own: the router stays there). */
export function isExpertTensor(name: string): boolean {
  return /\.moe\.\d+\./.test(name);
}

/** An MLP's matrices and biases: the first (and SwiGLU's gate) column-parallel, the second row-parallel. */
function mlpTensors(model: ModelSpec, p: string): TensorSpec[] {
  const h = model.hiddenSize;
  const f = model.ffnHiddenSize;
  const out: TensorSpec[] = [];
  if (model.mlp === "swiglu") {
    out.push(t(`${p}.gate.w`, [h, f], 1, "normal"));
    if (model.linearBias) out.push(t(`${p}.gate.b`, [f], 0, "zeros"));
  }
  out.push(t(`${p}.up.w`, [h, f], 1, "normal"));
  if (model.linearBias) out.push(t(`${p}.up.b`, [f], 0, "zeros"));
  out.push(t(`${p}.down.w`, [f, h], 0, "normal"));
  if (model.linearBias) out.push(t(`${p}.down.b`, [h], null, "zeros"));
  return out;
}

/**
 * Every unit of the model in order: embedding, layers (each followed by its experts, in `expertBlocks`
 * units, one per rank of an expert-parallel group), head (final norm and untied output layer).
 */
export function modelUnits(model: ModelSpec, expertBlocks = 1): UnitSpec[] {
  const h = model.hiddenSize;
  const embed: TensorSpec[] = [t("embed.word", [model.vocabSize, h], 0, "normal")];
  if (model.positionEmbedding === "learned") embed.push(t("embed.pos", [model.seqLen, h], null, "normal"));
  if (model.embeddingNorm === true) embed.push(...norm(model, "embed.norm"));
  const units: UnitSpec[] = [{ kind: "embed", layer: -1, name: "embed", tensors: embed }];
  for (let l = 0; l < model.layers; l++) {
    units.push({ kind: "layer", layer: l, name: `layers.${l}`, tensors: layerTensors(model, l) });
    if (model.moe !== undefined) for (let q = 0; q < expertBlocks; q++) units.push(expertsUnit(model, l, q, expertBlocks));
  }
  const head = [...norm(model, "final.norm")];
  if (!model.tiedEmbeddings) head.push(t("head.w", [h, model.vocabSize], 1, "normal"));
  units.push({ kind: "head", layer: -1, name: "head", tensors: head });
  return units;
}

/** A tensor's shape on one tensor-parallel rank. */
export function localShape(spec: TensorSpec, tp: number): number[] {
  if (spec.splitAxis === null) return [...spec.shape];
  const shape = [...spec.shape];
  shape[spec.splitAxis] = shape[spec.splitAxis]! / tp;
  return shape;
}

export function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Tensor-parallel rank `r`'s block of a full tensor (row-major). */
export function sliceForRank(full: Float32Array, spec: TensorSpec, tp: number, r: number): Float32Array {
  if (spec.splitAxis === null || tp === 1) return full.slice();
  const rows = spec.shape[0]!;
  const cols = spec.shape.length > 1 ? spec.shape[1]! : 1;
  if (spec.splitAxis === 0) {
    const n = (rows / tp) * cols;
    return full.slice(r * n, (r + 1) * n);
  }
  const c = cols / tp;
  const out = new Float32Array(rows * c);
  for (let i = 0; i < rows; i++) out.set(full.subarray(i * cols + r * c, i * cols + (r + 1) * c), i * c);
  return out;
}

/** Inverse of sliceForRank: the full tensor from every tp rank's block (replicated tensors: rank 0's). */
export function joinRanks(blocks: readonly Float32Array[], spec: TensorSpec): Float32Array {
  const tp = blocks.length;
  if (spec.splitAxis === null || tp === 1) return blocks[0]!.slice();
  const full = new Float32Array(elements(spec.shape));
  const rows = spec.shape[0]!;
  const cols = spec.shape.length > 1 ? spec.shape[1]! : 1;
  if (spec.splitAxis === 0) {
    blocks.forEach((b, r) => full.set(b, r * b.length));
    return full;
  }
  const c = cols / tp;
  blocks.forEach((b, r) => {
    for (let i = 0; i < rows; i++) full.set(b.subarray(i * c, (i + 1) * c), i * cols + r * c);
  });
  return full;
}

/**
 * Layers of model chunk `chunk` (0..v-1) on pipeline stage `stage`: the chunk is virtual stage
 * virtualStageOf(...) along the model (Megatron's interleaving c p + s, or ZB-V's V), each chunk of stage s
 * layersPerStage[s] / v layers.
 */
export function chunkLayers(plan: Plan, stage: number, chunk: number): number[] {
  const v = plan.virtualStages;
  const size = (s: number) => (plan.layersPerStage[s] ?? 0) / v;
  const global = virtualStageOf(plan, stage, chunk);
  let first = 0;
  for (let k = 0; k < global; k++) first += size(chunkOfVirtual(plan, k).stage);
  return Array.from({ length: size(stage) }, (_, i) => first + i);
}

/**
 * The layers stage `stage` recomputes in full: the first recomputeLayersPerStage[stage] of its layers in
 * forward order (Megatron-LM's "block" recompute method, chunk by chunk under interleaving).
 */
export function recomputedLayers(plan: Plan, stage: number): Set<number> {
  const r = plan.recomputeLayersPerStage[stage] ?? 0;
  const layers = Array.from({ length: plan.virtualStages }, (_, c) => chunkLayers(plan, stage, c)).flat();
  return new Set(layers.slice(0, r));
}

/**
 * Whether the head keeps its own copy of a tied word embedding: tied, and on another stage than the
 * embedding (not ZB-V's first stage). The copy is the head unit's last tensor, named as the embedding's
 * (same initial values, and the head's gradient for it lands in it); each step the two copies' gradients
 * are summed over the pair of ranks that hold them (run/rank.ts), so both take the same update, as
 * Megatron-LM's embedding group does (planner/cost/tied.ts).
 */
export function headKeepsTiedCopy(model: ModelSpec, plan: Plan): boolean {
  return tiedCopyOnHead(plan, model.tiedEmbeddings);
}

/**
 * Whether a plan runs a mixture of experts with tp and ep together, through Megatron-Core's alltoall token
 * dispatcher (model/moe.ts alltoallDispatch): each tp rank routes its own rows, and the experts' rows are
 * all-gathered over tp after the ep exchange.
 */
export function alltoallExperts(model: ModelSpec, plan: Plan): boolean {
  return model.moe !== undefined && plan.tp > 1 && plan.ep > 1;
}

/**
 * Positions of a sequence in one of a mixture of experts' routing groups (model/routing.ts): a cp rank's
 * share, and under the alltoall dispatcher a tp rank's of it. The ranks and the one-rank run that checks
 * the plan route by the same groups (ModelContext.routingTokens).
 */
export function routingGroupTokens(model: ModelSpec, plan: Plan): number {
  return plan.seqLen / plan.cp / (alltoallExperts(model, plan) ? plan.tp : 1);
}

/**
 * The units of one model chunk, in forward order; a layer's experts are those of expert-parallel rank
 * `epRank` (all of them without expert parallelism).
 */
export function chunkUnits(model: ModelSpec, plan: Plan, stage: number, chunk: number, epRank = 0): UnitSpec[] {
  const all = modelUnits(model, plan.ep);
  const layers = chunkLayers(plan, stage, chunk);
  const out: UnitSpec[] = [];
  const at = virtualStageOf(plan, stage, chunk);
  if (at === 0) out.push(all[0]!);
  for (const l of layers) {
    out.push(all.find((u) => u.kind === "layer" && u.layer === l)!);
    if (model.moe !== undefined) out.push(all.find((u) => u.name === expertsUnitName(l, epRank))!);
  }
  if (at === plan.pp * plan.virtualStages - 1) {
    const head = all[all.length - 1]!;
    out.push(headKeepsTiedCopy(model, plan) ? { ...head, tensors: [...head.tensors, all[0]!.tensors[0]!] } : head);
  }
  return out;
}

/** Where each tensor of a unit sits in the unit's flat vector on one tp rank. */
export interface TensorSlot {
  readonly spec: TensorSpec;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
}

export interface UnitSlots {
  readonly unit: UnitSpec;
  readonly tensors: readonly TensorSlot[];
  readonly size: number;
}

export function unitSlots(unit: UnitSpec, tp: number): UnitSlots {
  let offset = 0;
  const tensors = unit.tensors.map((spec) => {
    const shape = localShape(spec, tp);
    const size = elements(shape);
    const slot = { spec, shape, offset, size };
    offset += size;
    return slot;
  });
  return { unit, tensors, size: offset };
}

/** Every unit a pipeline stage holds, chunk by chunk (v chunks under the interleaved schedule), on expert-parallel rank `epRank`. */
export function stageUnits(model: ModelSpec, plan: Plan, stage: number, epRank = 0): UnitSpec[][] {
  return Array.from({ length: plan.virtualStages }, (_, c) => chunkUnits(model, plan, stage, c, epRank));
}
