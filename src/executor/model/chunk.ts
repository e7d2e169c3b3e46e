import type { Tensor } from "@tensorflow/tfjs";
import type { Grads, ModelContext, UnitParams, WeightDeferral } from "./context.js";
import { embedBackward, embedForward, headBackward, headForward, type HeadSaved } from "./ends.js";
import { layerBackward, layerForward, layerSavedTensors, type LayerSaved } from "./layer.js";
import { isExpertTensor, type UnitSpec } from "./layout.js";
import type { Tf } from "./ops.js";

/**
 * Forward and backward of one model chunk (a pipeline stage's slice of units) for one micro-batch.
 * Parameters come through a provider so that ZeRO-3 can gather a unit's weights just before use and drop
 * them after; gradients leave unit by unit so that ZeRO-2/3 can reduce-scatter them at once.
 */
export interface ParamProvider {
  acquire(unit: UnitSpec): UnitParams;
  release(unit: UnitSpec): void;
  /** Takes ownership of the gradient tensors. */
  accept(unit: UnitSpec, grads: Grads): void;
}

/** This rank's tokens of one micro-batch, position-major: row = position * batch + sequence. */
export interface MicroBatchTokens {
  readonly ids: Int32Array;
  readonly targets: Int32Array;
}

type Saved = { kind: "embed"; normIn?: Tensor } | { kind: "layer"; saved: LayerSaved } | { kind: "checkpoint"; xin: Tensor } | { kind: "head"; saved: HeadSaved }
  // A layer's experts: run, forward and backward, by their layer.
  | { kind: "experts" };

/** The experts unit that follows layer unit i in the chunk, if the model has experts. */
function expertsOf(units: readonly UnitSpec[], i: number): UnitSpec | undefined {
  const next = units[i + 1];
  return next?.kind === "experts" && next.layer === units[i]!.layer ? next : undefined;
}

/** A layer's parameters with its experts' (held in the experts unit) beside them. */
function withExperts(layer: UnitParams, experts: UnitParams | undefined): UnitParams {
  if (experts === undefined) return layer;
  return { get: (n) => layer.maybe(n) ?? experts.get(n), maybe: (n) => layer.maybe(n) ?? experts.maybe(n) };
}

/** A layer's gradients split into its own and its experts'. */
function splitExpertGrads(grads: Grads): { own: Grads; experts: Grads } {
  const own: Grads = new Map();
  const experts: Grads = new Map();
  for (const [k, t] of grads) (isExpertTensor(k) ? experts : own).set(k, t);
  return { own, experts };
}

export interface ChunkActivations {
  readonly saved: readonly Saved[];
  /** Every tensor kept for the backward (released after it). */
  readonly kept: Tensor[];
}

export interface ChunkForwardResult {
  /** The activation for the next chunk; null after the head. */
  readonly output: Tensor | null;
  /** This rank's share of the loss (0 unless the chunk ends with the head). */
  readonly loss: number;
  readonly activations: ChunkActivations;
}

/** Disposes what a layer's forward saved, all but `keep` (its input, kept for a recomputed backward). */
function disposeSaved(saved: LayerSaved, keep: Tensor): void {
  for (const t of layerSavedTensors(saved)) {
    if (t !== keep) t.dispose();
  }
}

/**
 * `input` is null for the chunk that starts with the embedding; it is kept by the first layer (the
 * caller must not dispose it). `makeContext` builds the micro-batch's context whose `save` adds to `kept`.
 */
export function forwardChunk(
  units: readonly UnitSpec[], params: ParamProvider, input: Tensor | null, data: MicroBatchTokens,
  makeContext: (kept: Tensor[]) => ModelContext,
): ChunkForwardResult {
  const kept: Tensor[] = [];
  const ctx = makeContext(kept);
  const saved: Saved[] = [];
  let x = input;
  let loss = 0;
  for (let i = 0; i < units.length; i++) {
    const unit = units[i]!;
    if (unit.kind === "experts") {
      saved.push({ kind: "experts" });
      continue;
    }
    const experts = expertsOf(units, i);
    const p = withExperts(params.acquire(unit), experts === undefined ? undefined : params.acquire(experts));
    if (unit.kind === "embed") {
      const e = embedForward(ctx, p, data.ids);
      x = e.out;
      saved.push(e.normIn === undefined ? { kind: "embed" } : { kind: "embed", normIn: e.normIn });
    } else if (unit.kind === "layer" && ctx.fullRecompute?.layers.has(unit.layer) === true) {
      // Full recomputation: keep the input only; the rest of this forward goes as soon as it is done.
      const xin = ctx.save(x!);
      const r = layerForward({ ...ctx, save: (t) => t }, p, unit.layer, xin);
      disposeSaved(r.saved, xin);
      x = r.out;
      saved.push({ kind: "checkpoint", xin });
    } else if (unit.kind === "layer") {
      const r = layerForward(ctx, p, unit.layer, x!);
      x = r.out;
      saved.push({ kind: "layer", saved: r.saved });
    } else {
      const r = headForward(ctx, p, x!, data.targets);
      loss = r.loss;
      x = null;
      saved.push({ kind: "head", saved: r.saved });
    }
    params.release(unit);
    if (experts !== undefined) params.release(experts);
  }
  return { output: x, loss, activations: { saved, kept } };
}

/**
 * A split backward's weight gradients (ZB-H1): for each unit in backward order, the gradients B computed
 * at once (norms, biases, position embeddings) and the weight gradients left for W with what they need,
 * kept through `keepTensor` (the memory ledger: counted as activations, released after W) unless it is
 * one of the chunk's saved activations already.
 */
export class DeferredWeights implements WeightDeferral {
  readonly units: { readonly unit: UnitSpec; readonly grads: Grads; readonly later: [string, () => Tensor][]; readonly owns?: (name: string) => boolean }[] = [];
  /** Tensors kept for W beyond the saved activations: the caller releases them after W. */
  readonly kept: Tensor[] = [];
  private readonly held = new Set<Tensor>();
  /**
   * While a fully recomputed layer's backward runs: the tensors its rebuilt forward holds, counted already
   * (FullRecompute.keepIn). W takes over those it needs instead of counting them again (keep).
   */
  adopting: ReadonlySet<Tensor> | undefined;

  constructor(private readonly saved: ReadonlySet<Tensor>, private readonly keepTensor: (t: Tensor, into: Tensor[]) => Tensor) {}

  /**
   * The next unit's entry. `owns`: for a unit whose backward runs inside the one begun before it (a layer's
   * experts, in their layer's), the gradients that are its; the rest go to that earlier entry.
   */
  begin(unit: UnitSpec, grads: Grads, owns?: (name: string) => boolean): void {
    this.units.push({ unit, grads, later: [], ...(owns === undefined ? {} : { owns }) });
  }

  keep(t: Tensor): Tensor {
    if (this.saved.has(t) || this.held.has(t)) return t;
    this.held.add(t);
    if (this.adopting?.has(t) === true) {
      // Counted and kept already by the recomputation, which leaves it to W (backwardChunk).
      this.kept.push(t);
      return t;
    }
    return this.keepTensor(t, this.kept);
  }

  /** Whether W still needs `t` (so the backward must not dispose it). */
  holds(t: Tensor): boolean {
    return this.held.has(t);
  }

  later(name: string, compute: () => Tensor): void {
    const last = this.units[this.units.length - 1]!;
    (last.owns === undefined || last.owns(name) ? last : this.units[this.units.length - 2]!).later.push([name, compute]);
  }
}

/**
 * Backward through the chunk, last unit first. `dout` is null for the chunk that ends with the head.
 * Returns the gradient of the chunk's input (null for the chunk that starts with the embedding) and
 * disposes `dout`; the caller releases the kept activations. With `deferred` (a split backward, ZB-H1)
 * the weight gradients wait in it for weightChunk, and the units' gradients go to `params` then.
 */
export function backwardChunk(
  units: readonly UnitSpec[], params: ParamProvider, acts: ChunkActivations, dout: Tensor | null, data: MicroBatchTokens,
  ctx: ModelContext, deferred?: DeferredWeights,
): Tensor | null {
  let d = dout;
  const c: ModelContext = deferred === undefined ? ctx : { ...ctx, weights: deferred };
  for (let i = units.length - 1; i >= 0; i--) {
    const unit = units[i]!;
    const s = acts.saved[i]!;
    if (s.kind === "experts") continue;
    const experts = expertsOf(units, i);
    const p = withExperts(params.acquire(unit), experts === undefined ? undefined : params.acquire(experts));
    let grads: Grads;
    let next: Tensor | null;
    // The unit's entry first: its weight gradients are recorded against it as its backward runs.
    const entry: Grads = new Map();
    deferred?.begin(unit, entry);
    // A layer's experts: their own entry, which takes their gradients as the layer's backward makes them.
    const expertEntry: Grads = new Map();
    if (experts !== undefined) deferred?.begin(experts, expertEntry, isExpertTensor);
    if (s.kind === "head") {
      const r = headBackward(c, p, s.saved, data.targets);
      grads = r.grads;
      next = r.dx;
    } else if (s.kind === "layer") {
      const r = layerBackward(c, p, unit.layer, s.saved, d!);
      grads = r.grads;
      next = r.dx;
    } else if (s.kind === "checkpoint") {
      // The layer's forward again from its kept input (its collectives too), then its backward; what the
      // rebuilt forward kept is released once that backward is done.
      const full = c.fullRecompute;
      if (full === undefined) throw new Error(`internal: layer ${unit.layer} was checkpointed in a context without full recomputation`);
      const held: Tensor[] = [];
      const again = layerForward({ ...c, save: (t) => (t === s.xin ? t : full.keepIn(t, held)) }, p, unit.layer, s.xin);
      again.out.dispose();
      // A split backward's W needs some of the rebuilt tensors (the linears' inputs): they pass to it.
      if (deferred !== undefined) deferred.adopting = new Set(held);
      const r = layerBackward(c, p, unit.layer, again.saved, d!);
      if (deferred !== undefined) deferred.adopting = undefined;
      full.release(held.filter((t) => deferred?.holds(t) !== true));
      grads = r.grads;
      next = r.dx;
    } else {
      grads = embedBackward(c, p, data.ids, d!, s.normIn);
      next = null;
    }
    if (d !== null && deferred?.holds(d) !== true) d.dispose();
    d = next;
    params.release(unit);
    if (experts !== undefined) params.release(experts);
    const split = experts === undefined ? { own: grads, experts: new Map() as Grads } : splitExpertGrads(grads);
    if (deferred === undefined) {
      if (experts !== undefined) params.accept(experts, split.experts);
      params.accept(unit, split.own);
    } else {
      for (const [k, t] of split.own) entry.set(k, t);
      for (const [k, t] of split.experts) expertEntry.set(k, t);
    }
  }
  return d;
}

/**
 * A split backward's W pass for one micro-batch's chunk: each unit's deferred weight gradients, then the
 * unit's gradients to `params`, in the order B left them (as an unsplit backward would hand them over).
 */
export function weightChunk(tf: Tf, params: ParamProvider, deferred: DeferredWeights): void {
  for (const u of deferred.units) {
    for (const [name, compute] of u.later) u.grads.set(name, tf.tidy(compute));
    params.accept(u.unit, u.grads);
  }
}
