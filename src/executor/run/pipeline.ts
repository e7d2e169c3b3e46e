import type { Tensor } from "@tensorflow/tfjs";
import { microBatchCount } from "../../spec/plan.js";
import type { ModelSpec, Plan } from "../../spec/types.js";
import type { HeapPath } from "./tensor-group.js";
import type { Group } from "../comm/group.js";
import type { Channel } from "../comm/p2p.js";
import type { Traffic } from "../comm/traffic.js";
import type { MemoryLedger } from "../measure/ledger.js";
import { backwardChunk, DeferredWeights, forwardChunk, weightChunk, type ChunkActivations, type MicroBatchTokens } from "../model/chunk.js";
import type { ExpertGroup, GroupOps, ModelContext } from "../model/context.js";
import { initialParameters, tokenSlice, TokenSource } from "../model/data.js";
import { recomputedLayers, stageUnits, type UnitSpec } from "../model/layout.js";
import { readNow, type Tf } from "../model/ops.js";
import { chunkOfVirtual, virtualStageOf } from "../../spec/virtual-stages.js";
import type { AdamConfig } from "../parallel/adam.js";
import { ModelState } from "../parallel/state.js";
import { epRankOf, rankOf, type Coords } from "../parallel/grid.js";
import { stageSchedule, type Action } from "../parallel/schedule.js";

/**
 * Runs one stage's schedule for one step: forwards and backwards of (micro-batch, chunk) pairs, with
 * activations and their gradients crossing stage boundaries as tagged messages. Virtual stage g (chunk c of
 * stage s: c p + s, or ZB-V's V, spec/virtual-stages.ts) feeds g + 1; the message carries the receiver's
 * (pass, micro-batch, chunk). ZB-V's turn, from the last stage's first chunk to its second, stays local.
 */
export interface StageDeps {
  readonly tf: Tf;
  readonly model: ModelSpec;
  readonly plan: Plan;
  readonly coords: Coords;
  /** Units of each of this stage's chunks. */
  readonly chunks: readonly (readonly UnitSpec[])[];
  readonly state: ModelState;
  readonly tp: GroupOps;
  readonly cp: GroupOps;
  /** The expert-parallel group; absent without expert parallelism. */
  readonly ep?: ExpertGroup;
  /** A mixture of experts' routing group, in positions of a sequence (ModelContext.routingTokens); absent: this rank's. */
  readonly routingTokens?: number;
  readonly tokens: TokenSource;
  readonly ledger: MemoryLedger;
  readonly traffic: Traffic;
  readonly channel: (from: number, to: number) => Channel;
  /** Called before each pass (fault injection). */
  readonly before: (pass: "forward" | "backward") => void;
}

export interface StageTimes {
  /** This rank's share of the step's loss. */
  readonly loss: number;
  /** From the first pass's start to the last pass's end. */
  readonly spanSeconds: number;
  /** The span's start and end on the wall clock shared by every thread (ms since the epoch). */
  readonly startMs: number;
  readonly endMs: number;
  /** Of the span, blocked waiting for a neighbouring stage. */
  readonly pipelineIdleSeconds: number;
  /** Each pass's own seconds (communication excluded), in the order run: the pass-time jitter calibrate measures. */
  readonly forwardPassSeconds: readonly number[];
  /** Backward passes, and under ZB-H1 the weight-gradient passes W too (backward work either way). */
  readonly backwardPassSeconds: readonly number[];
}

function tag(pass: "F" | "B", microBatch: number, chunk: number): number {
  return (pass === "F" ? 0 : 1) * 2 ** 24 + microBatch * 64 + chunk;
}

function commSeconds(traffic: Traffic): { total: number; ppIdle: number } {
  const k = traffic.snapshot().byKind;
  return { total: k.tp.seconds + k.cp.seconds + k.pp.seconds + k.dp.seconds + k.ep.seconds, ppIdle: k.pp.idleSeconds };
}

/** What a rank's stage trains: its chunks' units, their state from the seeded weights, the tokens, the schedule. */
export interface StageModel {
  readonly chunks: readonly (readonly UnitSpec[])[];
  readonly state: ModelState;
  readonly tokens: TokenSource;
  readonly actions: readonly Action[];
}

/**
 * The stage at `coords` of `plan`, weights seeded by `seed` (the same on every split), sharded over `dp` by
 * ZeRO (a layer's experts, under expert parallelism, over `expertDp`, the ranks that hold the same ones),
 * whose weight gathers read the other ranks' heaps when `heap` is given and every member shares.
 */
export function stageModel(tf: Tf, model: ModelSpec, plan: Plan, coords: Coords, seed: number, adam: AdamConfig, dp: Group | undefined, heap?: HeapPath, expertDp?: Group): StageModel {
  const chunks = stageUnits(model, plan, coords.pp, epRankOf(plan, coords));
  const init = initialParameters(model, seed);
  const state = new ModelState({
    tf, units: chunks.flat(), tp: plan.tp, tpRank: coords.tp, zero: plan.zero, dp, initial: (name) => init.get(name)!, adam,
    // Under expert parallelism the experts' gradients are reduced over the ranks that hold the same ones (edp).
    ...(plan.ep > 1 ? { experts: { group: expertDp } } : {}),
    // The parameter servers hold the optimizer (ps-server.ts): a worker keeps none.
    optimizer: plan.parameterServers === 0,
    ...(heap === undefined ? {} : { heap }),
  });
  init.clear();
  return { chunks, state, tokens: new TokenSource(model, plan.seqLen, seed, plan.globalBatch), actions: stageSchedule(model, plan, coords.pp, microBatchCount(plan)) };
}

/** What one chunk of this stage handed to another; the schedule runs the giver first (an internal error if not). */
function takeHanded(handed: Map<number, Tensor>, key: number): Tensor {
  const t = handed.get(key);
  if (t === undefined) throw new Error(`internal: a pass of this stage ran before the pass of its other chunk that feeds it (tag ${key})`);
  handed.delete(key);
  return t;
}

export function runStage(d: StageDeps, step: number, actions: readonly Action[]): StageTimes {
  const { tf, plan, coords } = d;
  const p = plan.pp;
  const v = plan.virtualStages;
  const tokensPerRank = plan.seqLen / plan.cp;
  const rows = (plan.microBatch * tokensPerRank) / (plan.sequenceParallel ? plan.tp : 1);
  // The stage and chunk that run virtual stage g; under ZB-V the turn of the V stays on this stage.
  const neighbour = (g: number) => {
    const at = chunkOfVirtual(plan, g);
    return { rank: rankOf(plan, { ...coords, pp: at.stage }), chunk: at.chunk, local: at.stage === coords.pp };
  };
  // Activations and gradients handed from one of this stage's chunks to another (ZB-V's turn), by tag.
  const handed = new Map<number, Tensor>();
  const data = new Map<number, MicroBatchTokens>();
  const tokensOf = (mb: number) => {
    let t = data.get(mb);
    if (t === undefined) data.set(mb, (t = d.tokens.tokens(step, tokenSlice(plan, coords.dp, coords.cp, mb))));
    return t;
  };
  const recomputed = recomputedLayers(plan, coords.pp);
  const context = (kept: Tensor[]): ModelContext => ({
    tf, model: d.model, batch: plan.microBatch, tokens: tokensPerRank, pos0: coords.cp * tokensPerRank,
    stepTokens: plan.globalBatch * plan.seqLen, tp: d.tp, cp: d.cp, sp: plan.sequenceParallel, ...(d.ep === undefined ? {} : { ep: d.ep }),
    ...(d.routingTokens === undefined ? {} : { routingTokens: d.routingTokens }),
    save: (t) => d.ledger.keep(t, kept),
    recomputeAttention: plan.recompute === "selective",
    fullRecompute: { layers: recomputed, keepIn: (t, into) => d.ledger.keep(t, into), release: (ts) => d.ledger.release(ts) },
  });
  const acts = new Map<number, ChunkActivations>();
  const split = actions.some((a) => a.pass === "W");
  const deferred = new Map<number, DeferredWeights>();
  let loss = 0;
  const forwardPassSeconds: number[] = [];
  const backwardPassSeconds: number[] = [];
  const start = performance.now();
  const before = commSeconds(d.traffic);
  const self = rankOf(plan, coords);
  for (const a of actions) {
    const g = virtualStageOf(plan, coords.pp, a.chunk);
    const first = g === 0;
    const last = g === p * v - 1;
    const units = d.chunks[a.chunk]!;
    const key = a.microBatch * 64 + a.chunk;
    const t0 = performance.now();
    const c0 = commSeconds(d.traffic).total;
    if (a.pass === "F") {
      d.before("forward");
      let input: Tensor | null = null;
      if (!first) {
        const prev = neighbour(g - 1);
        input = prev.local
          ? takeHanded(handed, tag("F", a.microBatch, a.chunk))
          : tf.tensor(d.channel(prev.rank, self).recv(tag("F", a.microBatch, a.chunk), "pp.activation"), [rows, d.model.hiddenSize]);
      }
      const r = forwardChunk(units, d.state, input, tokensOf(a.microBatch), context);
      loss += r.loss;
      if (r.output !== null) {
        const next = neighbour(g + 1);
        if (next.local) handed.set(tag("F", a.microBatch, next.chunk), r.output);
        else {
          d.channel(self, next.rank).send(tag("F", a.microBatch, next.chunk), readNow(tf, r.output), "pp.activation");
          r.output.dispose();
        }
      }
      acts.set(key, r.activations);
      forwardPassSeconds.push((performance.now() - t0) / 1e3 - (commSeconds(d.traffic).total - c0));
    } else if (a.pass === "W") {
      // ZB-H1's weight-gradient pass: what B left, then the micro-batch's activations and kept tensors go.
      d.before("backward");
      const w = deferred.get(key)!;
      deferred.delete(key);
      weightChunk(tf, d.state, w);
      d.ledger.sample();
      d.ledger.release(acts.get(key)!.kept);
      d.ledger.release(w.kept);
      acts.delete(key);
      backwardPassSeconds.push((performance.now() - t0) / 1e3 - (commSeconds(d.traffic).total - c0));
    } else {
      d.before("backward");
      let dout: Tensor | null = null;
      if (!last) {
        const next = neighbour(g + 1);
        dout = next.local
          ? takeHanded(handed, tag("B", a.microBatch, a.chunk))
          : tf.tensor(d.channel(next.rank, self).recv(tag("B", a.microBatch, a.chunk), "pp.gradient"), [rows, d.model.hiddenSize]);
      }
      const saved = acts.get(key)!;
      // A split backward (ZB-H1) keeps the activations and what its weight gradients need until W.
      const w = split ? new DeferredWeights(new Set(saved.kept), (t, into) => d.ledger.keep(t, into, false)) : undefined;
      const dinput = backwardChunk(units, d.state, saved, dout, tokensOf(a.microBatch), context([]), w);
      d.ledger.sample();
      if (w === undefined) {
        d.ledger.release(saved.kept);
        acts.delete(key);
      } else deferred.set(key, w);
      if (dinput !== null) {
        const prev = neighbour(g - 1);
        if (prev.local) handed.set(tag("B", a.microBatch, prev.chunk), dinput);
        else {
          d.channel(self, prev.rank).send(tag("B", a.microBatch, prev.chunk), readNow(tf, dinput), "pp.gradient");
          dinput.dispose();
        }
      }
      backwardPassSeconds.push((performance.now() - t0) / 1e3 - (commSeconds(d.traffic).total - c0));
    }
  }
  const end = performance.now();
  return {
    loss, forwardPassSeconds, backwardPassSeconds,
    spanSeconds: (end - start) / 1e3,
    startMs: performance.timeOrigin + start,
    endMs: performance.timeOrigin + end,
    pipelineIdleSeconds: commSeconds(d.traffic).ppIdle - before.ppIdle,
  };
}
