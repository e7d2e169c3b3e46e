import type { Built } from "./build-pipeline.js";
import type { OpColumns, Graph } from "./graph.js";
import type { RunResult } from "./engine.js";
import { OpKind, STREAMS, Stream, type ExposedSeconds, type MemorySeries, type OpTable, type RankTimeline, type Timeline } from "./types.js";
import type { Schedule } from "../spec/types.js";

const EMPTY_SERIES: MemorySeries = { timeSeconds: new Float64Array(0), bytes: new Float64Array(0) };

/** Work that keeps a rank's GPU busy for the step: passes and the collectives they wait for. */
function isWork(kind: number): boolean {
  return kind === OpKind.forward || kind === OpKind.backward || kind === OpKind.weight ||
    kind === OpKind.tp || kind === OpKind.cp || kind === OpKind.ep;
}

/** What a critical-path segment that is not the critical rank's own work counts as. */
type Waiting = "pp" | "dp" | "optimizer" | "other";
function waitingOn(kind: number): Waiting {
  switch (kind) {
    case OpKind.pp:
      return "pp";
    case OpKind.dpGather: case OpKind.dpReduce: case OpKind.psPush: case OpKind.psPull: case OpKind.psUpdate: case OpKind.barrier:
      return "dp";
    case OpKind.optimizer:
      return "optimizer";
    default:
      return "other"; // a pass or collective of some stage
  }
}

/** The critical path: from the op that ends last, back through each op's critical predecessor. */
function criticalPath(run: RunResult): Int32Array {
  const path: number[] = [];
  for (let op = run.lastOp; op >= 0; op = run.critical[op]!) path.push(op);
  return Int32Array.from(path.reverse());
}

/** Sorted, disjoint intervals covering the given ones (starts and ends in parallel arrays). */
function unionOf(starts: number[], ends: number[]): { starts: number[]; ends: number[] } {
  const order = starts.map((_, i) => i).sort((a, b) => starts[a]! - starts[b]!);
  const out = { starts: [] as number[], ends: [] as number[] };
  for (const i of order) {
    const n = out.ends.length;
    if (n > 0 && starts[i]! <= out.ends[n - 1]!) out.ends[n - 1] = Math.max(out.ends[n - 1]!, ends[i]!);
    else {
      out.starts.push(starts[i]!);
      out.ends.push(ends[i]!);
    }
  }
  return out;
}

/** Seconds of [from, to] that the disjoint sorted intervals cover (`from` at or after `cursor.at`'s interval start). */
function coveredSeconds(u: { starts: number[]; ends: number[] }, from: number, to: number, cursor: { at: number }): number {
  while (cursor.at < u.ends.length && u.ends[cursor.at]! <= from) cursor.at++;
  let covered = 0;
  for (let k = cursor.at; k < u.ends.length && u.starts[k]! < to; k++) covered += Math.max(0, Math.min(to, u.ends[k]!) - Math.max(from, u.starts[k]!));
  return covered;
}

/**
 * The step in the contract's terms (design brief section 5: exposed seconds on the critical path that
 * add up to the step). The critical rank's own passes and blocking collectives count as compute and
 * tp/cp/ep. The rest of the step is the time that rank is idle, and each idle moment is named by what the
 * critical path is doing then (the path covers [0, span] without gaps: each op starts when its critical
 * predecessor ends): a pipeline transfer is exposed pp, a data-parallel collective dp, the optimizer step
 * the optimizer, and another stage's pass the pipeline bubble. (Summing the path's transfers whole, as
 * before 2026-11-23, also counted transfers that ran while the critical rank computed off the path: gpt3
 * tp 8 x pp 8 showed 1.06 s of pp and no bubble.) With uniform stages this is the analytic decomposition.
 */
function attribute(ops: OpTable, path: Int32Array, rank: number, span: number): ExposedSeconds {
  const own = { compute: 0, tp: 0, cp: 0, ep: 0 };
  const kinds = ops.kind;
  const ranks = ops.rank;
  const starts = ops.startSeconds;
  const ends = ops.endSeconds;
  const busyStarts: number[] = [];
  const busyEnds: number[] = [];
  for (let op = 0; op < ops.size; op++) {
    const k = kinds[op]!;
    if (ranks[op] !== rank || !isWork(k)) continue;
    const d = ends[op]! - starts[op]!;
    if (k === OpKind.tp) own.tp += d;
    else if (k === OpKind.cp) own.cp += d;
    else if (k === OpKind.ep) own.ep += d;
    else own.compute += d;
    if (d > 0) {
      busyStarts.push(starts[op]!);
      busyEnds.push(ends[op]!);
    }
  }
  const busy = unionOf(busyStarts, busyEnds);
  const idleOnPath: Record<Waiting, number> = { pp: 0, dp: 0, optimizer: 0, other: 0 };
  const cursor = { at: 0 };
  for (const op of path) {
    const from = starts[op]!;
    const to = ends[op]!;
    if (to <= from) continue;
    idleOnPath[waitingOn(kinds[op]!)] += to - from - coveredSeconds(busy, from, to, cursor);
  }
  // The parts add up to the step: where the rank's own work overlaps itself (a collective beside a pass),
  // its sum exceeds the time it is busy, and the idle parts shrink alike.
  const left = Math.max(0, span - own.compute - own.tp - own.cp - own.ep);
  const idle = idleOnPath.pp + idleOnPath.dp + idleOnPath.optimizer + idleOnPath.other;
  const share = idle > 0 ? left / idle : 0;
  return {
    computeSeconds: own.compute, tpSeconds: own.tp, cpSeconds: own.cp, epSeconds: own.ep,
    ppSeconds: idleOnPath.pp * share, dpSeconds: idleOnPath.dp * share, optimizerSeconds: idleOnPath.optimizer * share,
    bubbleSeconds: idle > 0 ? idleOnPath.other * share : left,
  };
}

/** Latest end among each step's closing ops. */
function stepEndSeconds(built: Built, run: RunResult): number[] {
  return built.stepEnds.map((ids) => ids.reduce((t, op) => Math.max(t, run.endSeconds[op]!), 0));
}

/** The step in the contract's terms: what an Estimate needs from a run (analyze adds the per-rank timeline). */
export interface StepSummary {
  readonly stepSeconds: number;
  readonly spanSeconds: number;
  readonly steps: number;
  readonly criticalRank: number;
  readonly exposed: ExposedSeconds;
  readonly criticalPath: Int32Array;
}

/**
 * The step's time, its critical rank and the breakdown from that rank's point of view. `busy`, when
 * given (ranks x STREAMS), also receives each rank's busy seconds per stream, in the same pass over the ops.
 */
export function summarize(built: Built, ops: OpTable, run: RunResult, busy?: Float64Array): StepSummary {
  const nRanks = built.ranks.length;
  const work = new Float64Array(nRanks);
  const kinds = ops.kind;
  const ranks = ops.rank;
  const streams = ops.stream;
  const peers = ops.peer;
  const starts = run.startSeconds;
  const ends = run.endSeconds;
  for (let op = 0; op < ops.size; op++) {
    const d = ends[op]! - starts[op]!;
    const r = ranks[op]!;
    if (busy !== undefined) {
      const own = r * STREAMS + streams[op]!;
      busy[own]! += d;
      const peer = peers[op]!;
      if (peer >= 0 && peer !== own) busy[peer]! += d;
    }
    if (isWork(kinds[op]!)) work[r]! += d;
  }

  // The critical rank does the most work; near-ties (summation noise) go to the last, whose waits are
  // the pipeline's fill before its first pass and drain after its last (the analytic decomposition's view;
  // the first stage of a uniform pipeline is busy during the drain's transfers).
  let most = 0;
  for (let r = 0; r < nRanks; r++) if (built.ranks[r]!.role !== "server") most = Math.max(most, work[r]!);
  let criticalRank = nRanks - 1;
  while (built.ranks[criticalRank]!.role === "server" || work[criticalRank]! < most * (1 - 1e-12)) criticalRank--;

  const span = run.spanSeconds;
  const stepEnds = stepEndSeconds(built, run);
  const steps = stepEnds.length;
  const path = criticalPath(run);
  let stepSeconds = span;
  let exposed = attribute(ops, path, criticalRank, span);
  if (steps > 1) {
    // Asynchronous servers: the steady-state period; the worker computes its share of it, the rest is exposed traffic.
    stepSeconds = (stepEnds[steps - 1]! - stepEnds[0]!) / (steps - 1);
    const perStep = (x: number) => x / steps;
    exposed = {
      computeSeconds: perStep(exposed.computeSeconds), tpSeconds: perStep(exposed.tpSeconds), cpSeconds: perStep(exposed.cpSeconds),
      epSeconds: perStep(exposed.epSeconds), ppSeconds: 0, optimizerSeconds: 0, bubbleSeconds: 0, dpSeconds: 0,
    };
    const owned = exposed.computeSeconds + exposed.tpSeconds + exposed.cpSeconds + exposed.epSeconds;
    exposed = { ...exposed, dpSeconds: Math.max(0, stepSeconds - owned) };
  }
  return { stepSeconds, spanSeconds: span, steps, criticalRank, exposed, criticalPath: path };
}

/** The operation table of a finished run: the builder's columns with each op's peer, start and end. */
export function opTable(graph: Graph, columns: OpColumns, run: RunResult): OpTable {
  return { ...columns, size: graph.size, peer: graph.fifo, startSeconds: run.startSeconds, endSeconds: run.endSeconds };
}

/** Measures a finished run: per-rank busy and idle time, memory over time, the critical path and its breakdown. */
export function analyze(schedule: Schedule, built: Built, graph: Graph, columns: OpColumns, run: RunResult): Timeline {
  const ops = opTable(graph, columns, run);
  const busy = new Float64Array(built.ranks.length * STREAMS);
  const summary = summarize(built, ops, run, busy);
  const span = summary.spanSeconds;
  const ranks: RankTimeline[] = built.ranks.map((r, i) => {
    const perStream = Array.from(busy.subarray(i * STREAMS, (i + 1) * STREAMS));
    const idle = Math.max(0, span - perStream[Stream.compute]! - perStream[Stream.collective]!);
    const mem = built.memory[i]!.evaluate(run.startSeconds, run.endSeconds);
    const step = built.optimizerStepMemory?.[i]?.evaluate(run.startSeconds, run.endSeconds);
    return {
      name: r.name, role: r.role, busySeconds: perStream, idleSeconds: idle, idleFraction: span > 0 ? idle / span : 0,
      peakActivationBytes: mem.peakBytes, memory: { timeSeconds: mem.timeSeconds, bytes: mem.bytes },
      optimizerStepMemory: step === undefined ? EMPTY_SERIES : { timeSeconds: step.timeSeconds, bytes: step.bytes },
    };
  });
  return {
    schedule, stepSeconds: summary.stepSeconds, spanSeconds: span, steps: summary.steps, ranks, criticalRank: summary.criticalRank,
    exposed: summary.exposed, criticalPath: summary.criticalPath, ops, events: run.events,
  };
}
