import { GraphBuilder } from "./graph.js";
import { MemoryLog } from "./memory.js";
import { Pass, splitsBackward, stagePrograms, type StageProgram } from "./schedules.js";
import { chunkOfVirtual, virtualStageOf } from "../spec/virtual-stages.js";
import { vPassRatios, type VPassRatios } from "../planner/cost/zb-v.js";
import type { ChunkEndSeconds } from "../planner/cost/stages.js";
import { OpKind, RECV_ACTIVATION, RECV_GRADIENT, SEND_ACTIVATION, SEND_GRADIENT, Stream, TIED_SYNC, type OpKindCode, type RankRole, type SimInput, type SimStage } from "./types.js";

/** A built step: the graph, who the ranks are, their memory logs, and which ops end each simulated step. */
export interface Built {
  readonly builder: GraphBuilder;
  readonly ranks: readonly { readonly name: string; readonly role: RankRole }[];
  /** Activation memory, per rank. */
  readonly memory: readonly MemoryLog[];
  /** The optimizer step's transient memory, per rank (absent: none on any rank). */
  readonly optimizerStepMemory?: readonly MemoryLog[];
  /** For each simulated step, the ops whose latest end closes it. */
  readonly stepEnds: readonly Int32Array[];
}

const PASS_KIND = [OpKind.forward, OpKind.backward, OpKind.weight] as const;

type Collective = readonly [OpKindCode, number]; // kind, seconds

/** Per-chunk seconds of one stage's passes (indexed by Pass) and the blocking collectives after them. */
interface ChunkCosts {
  readonly pass: readonly [number, number, number];
  readonly afterForward: readonly Collective[];
  readonly afterBackward: readonly Collective[];
}

/**
 * Each chunk's costs: 1/v of the stage's layers (and of its collectives, per layer), plus the model ends
 * the chunk runs (SimStage.ends): ZB-V's first stage runs the embedding in its first chunk and the output
 * layer and loss in its second, which the V's turn makes the critical path's.
 */
function chunkCosts(st: SimStage, v: number, split: boolean): ChunkCosts[] {
  const passes = (f: number, b: number, w: number, recompute: number): [number, number, number] => [f, b + (split ? 0 : w) + recompute, split ? w : 0];
  const nonzero = (xs: Collective[]) => xs.filter(([, s]) => s > 0);
  const afterForward = nonzero([[OpKind.tp, st.tp.forward / v], [OpKind.cp, st.cp.forward / v], [OpKind.ep, st.ep.forward / v]]);
  const afterBackward = nonzero([[OpKind.tp, st.tp.backward / v], [OpKind.cp, st.cp.backward / v], [OpKind.ep, st.ep.backward / v]]);
  const stage = passes(st.forwardSeconds, st.backwardInputSeconds, st.backwardWeightSeconds, st.recomputeSeconds);
  const ends = st.ends ?? [];
  // every chunk alike (one chunk, or no end on this stage): 1/v of the stage
  if (v === 1 || ends.length === 0) return new Array<ChunkCosts>(v).fill({ pass: stage.map((x) => x / v) as [number, number, number], afterForward, afterBackward });
  const sum = (pick: (e: ChunkEndSeconds) => number, of: readonly ChunkEndSeconds[]) => of.reduce((a, e) => a + pick(e), 0);
  const endPasses = (of: readonly ChunkEndSeconds[]) =>
    passes(sum((e) => e.forwardSeconds, of), sum((e) => e.backwardInputSeconds, of), sum((e) => e.backwardWeightSeconds, of), 0);
  const allEnds = endPasses(ends);
  return Array.from({ length: v }, (_, c) => {
    const own = endPasses(ends.filter((e) => e.chunk === c));
    const pass = stage.map((x, i) => (x - allEnds[i]!) / v + own[i]!) as [number, number, number];
    return { pass, afterForward, afterBackward };
  });
}

/**
 * Data-parallel seconds before (gathers) and after (reductions) entry k of a stage's program. The once-
 * per-step traffic rides on the first forward and the last gradient-producing pass of each chunk
 * (Megatron-LM's overlapped parameter gather and gradient reduction; PyTorch DDP's bucketed all-reduce).
 */
function dpAround(prog: StageProgram, st: SimStage, v: number, split: boolean, exposed: boolean): { before: Float64Array; after: Float64Array } {
  const before = new Float64Array(prog.length);
  const after = new Float64Array(prog.length);
  if (exposed) {
    // The reduction whole after the program's last pass (ZeRO 0/1: no per-micro-batch traffic); the
    // gather comes after the optimizer step (buildPipeline).
    if (prog.length > 0) after[prog.length - 1] = st.dp.reduceOnceSeconds;
    return { before, after };
  }
  const firstForward = new Int32Array(v).fill(-1);
  const lastGrad = new Int32Array(v).fill(-1);
  const gradPass = split ? Pass.weight : Pass.backward;
  const dp = st.dp;
  for (let k = 0; k < prog.length; k++) {
    const pass = prog.pass[k]!;
    const c = prog.chunk[k]!;
    if (pass === Pass.forward && firstForward[c]! < 0) firstForward[c] = k;
    if (pass === gradPass) lastGrad[c] = k;
    if (pass === Pass.forward) before[k] = dp.gatherForwardSeconds / v;
    if (pass === Pass.backward) before[k] = dp.gatherBackwardSeconds / v;
    if (pass === gradPass) after[k] = dp.reducePerMicroBatchSeconds / v;
  }
  for (let c = 0; c < v; c++) {
    if (firstForward[c]! >= 0) before[firstForward[c]!]! += dp.gatherOnceSeconds / v;
    if (lastGrad[c]! >= 0) after[lastGrad[c]!]! += dp.reduceOnceSeconds / v;
  }
  return { before, after };
}

/** Op ids of every (virtual stage, micro-batch) pass, for the edges between stages. */
interface Links {
  readonly firstForward: Int32Array;
  readonly firstBackward: Int32Array;
  readonly doneForward: Int32Array;
  readonly sendForward: Int32Array;
  readonly sendBackward: Int32Array;
  /** A backward pass with its collectives, before its send (as doneForward). */
  readonly doneBackward: Int32Array;
  /** Blocking receives (plan.ppBlockingSends) before a forward or backward; -1 where none. */
  readonly receiveForward: Int32Array;
  readonly receiveBackward: Int32Array;
}

/**
 * One stage's operations in program order. A pass that carries data-parallel traffic is split into
 * `buckets` pieces (layer groups): a gather bucket must end before its piece starts and is issued one
 * piece ahead (prefetch, at most two pieces' parameters resident: FSDP's limit on in-flight all-gathers),
 * a reduction bucket starts after its piece. Tensor/context/expert collectives follow the pass on the
 * collective stream and the next pass waits for them; each output is sent on the send stream, in order,
 * and taken by the receiver's receive stream first come first served.
 */
function emitStage(b: GraphBuilder, input: SimInput, s: number, prog: StageProgram, links: Links, mem: MemoryLog): { compute: number; dp: number } {
  const p = input.stages.length;
  const m = input.microBatches;
  const v = input.virtualStages;
  const lastVirtual = p * v - 1;
  const shape = { pp: p, virtualStages: v, schedule: input.schedule };
  const st = input.stages[s]!;
  const split = splitsBackward(input.schedule);
  const cost = chunkCosts(st, v, split);
  const { before, after } = dpAround(prog, st, v, split, input.dpExposed === true);
  const buckets = input.dpExposed === true ? 1 : Math.max(1, Math.floor(st.dp.buckets));
  // In line (dpBlocking): each collective on the compute stream, the next piece after it.
  const inLine = input.dpBlocking === true;
  const dpStream = inLine ? Stream.compute : Stream.dp;
  const pieces = (k: number) => (before[k]! > 0 || after[k]! > 0 ? buckets : 1);
  const chunkBytes = st.memory.perMicroBatchBytes / v;
  const weightInputs = (st.memory.weightGradInputBytes ?? 0) / v;

  let prevDone = -1;
  let prevPiece = -1;
  let dpPrev = -1;
  let sendPrev = -1;
  let gather = -1;
  // A gather bucket starts after `after` (overlapped: the piece before the one it runs ahead of; in line:
  // everything the stage did before the piece it feeds).
  const issueGather = (k: number, j: number, after: number) => {
    const seconds = before[k]! / pieces(k);
    if (seconds <= 0) return;
    gather = b.op(OpKind.dpGather, s, dpStream, seconds, prog.microBatch[k]!, prog.chunk[k]!, j);
    b.edge(dpPrev, gather);
    b.edge(after, gather);
    dpPrev = gather;
  };
  if (prog.length > 0 && !inLine) issueGather(0, 0, -1);

  // Each chunk's first forward of the step pays its new weights' first use (SimStage.firstForwardSeconds).
  const firstForwardDone = new Uint8Array(v);
  for (let k = 0; k < prog.length; k++) {
    const pass = prog.pass[k]!;
    const mb = prog.microBatch[k]!;
    const c = prog.chunk[k]!;
    const vs = virtualStageOf(shape, s, c);
    const slot = vs * m + mb;
    const n = pieces(k);
    let passSeconds = cost[c]!.pass[pass]!;
    if (pass === Pass.forward && firstForwardDone[c] === 0) {
      firstForwardDone[c] = 1;
      passSeconds += st.firstForwardSeconds?.[c] ?? 0;
    }
    const seconds = passSeconds / n;
    // The neighbouring virtual stage this pass takes its input from, and gives its output to, when on another GPU.
    const from = pass === Pass.forward ? vs - 1 : vs + 1;
    const to = pass === Pass.forward ? vs + 1 : vs - 1;
    const receives = pass !== Pass.weight && from >= 0 && from <= lastVirtual && chunkOfVirtual(shape, from).stage !== s;
    if (receives && input.blockingSends === true) {
      // A blocking receive holds this stage for the transfer before the pass that needs it (DeepSpeed's
      // engine: p2p.recv without async_op); the pass also waits for the send itself (buildPipeline).
      const r = b.op(OpKind.pp, s, Stream.compute, input.ppTransferSeconds, mb, c, pass === Pass.forward ? RECV_ACTIVATION : RECV_GRADIENT);
      b.edge(prevDone, r);
      prevDone = r;
      (pass === Pass.forward ? links.receiveForward : links.receiveBackward)[slot] = r;
    }
    let first = -1;
    let piece = -1;
    // What the next piece (and, after the last, the pass's collectives) follows: the piece, or in line its reduction.
    let link = -1;
    // What the activation (or gradient) from the neighbouring stage must reach first: in line, the pass's
    // first gather (the executor receives, then gathers), otherwise its first piece.
    let entry = -1;
    for (let j = 0; j < n; j++) {
      if (inLine) {
        issueGather(k, j, j === 0 ? prevDone : link);
        if (j === 0) entry = gather;
      }
      const op = b.op(PASS_KIND[pass]!, s, Stream.compute, seconds, mb, c, j);
      b.edge(j === 0 ? prevDone : link, op);
      b.edge(gather, op);
      gather = -1;
      if (j === 0) first = op;
      if (!inLine) {
        // Prefetch: the next bucket's gather runs beside this piece.
        if (j + 1 < n) issueGather(k, j + 1, prevPiece);
        else if (k + 1 < prog.length) issueGather(k + 1, 0, prevPiece);
      }
      prevPiece = op;
      piece = op;
      link = op;
      if (after[k]! > 0 && input.dpExposed !== true) {
        const r = b.op(OpKind.dpReduce, s, dpStream, after[k]! / n, mb, c, j);
        b.edge(dpPrev, r);
        b.edge(op, r);
        dpPrev = r;
        if (inLine) link = r;
      }
    }
    const lastOfChain = vs === lastVirtual;
    // Activations: held from the forward's start until the pass that last needs them ends.
    if (entry < 0) entry = first;
    if (pass === Pass.forward) {
      links.firstForward[slot] = entry;
      mem.add(first, false, chunkBytes + (lastOfChain ? st.memory.lossBytes : 0));
    } else if (pass === Pass.backward) {
      links.firstBackward[slot] = entry;
      mem.add(first, false, st.memory.backwardTransientBytes);
      // Split (ZB-H1): the activations wait for W, and B leaves W its inputs.
      mem.add(piece, true, -st.memory.backwardTransientBytes - (lastOfChain ? st.memory.lossBytes : 0) + (split ? weightInputs : -chunkBytes));
    } else {
      mem.add(piece, true, -chunkBytes - weightInputs);
    }
    let done = link;
    if (pass !== Pass.weight) {
      for (const [kind, sec] of pass === Pass.forward ? cost[c]!.afterForward : cost[c]!.afterBackward) {
        const op = b.op(kind, s, Stream.collective, sec, mb, c);
        b.edge(done, op);
        done = op;
      }
    }
    prevDone = done;
    if (pass === Pass.forward) links.doneForward[slot] = done;
    else if (pass === Pass.backward) links.doneBackward[slot] = done;
    const target = pass !== Pass.weight && to >= 0 && to <= lastVirtual ? chunkOfVirtual(shape, to).stage : s;
    if (target !== s) {
      const blocking = input.blockingSends === true;
      const x = b.op(OpKind.pp, s, blocking ? Stream.compute : Stream.send, input.ppTransferSeconds, mb, c, pass === Pass.forward ? SEND_ACTIVATION : SEND_GRADIENT);
      b.fifo(x, target, Stream.recv);
      b.edge(done, x);
      b.edge(sendPrev, x);
      sendPrev = x;
      (pass === Pass.forward ? links.sendForward : links.sendBackward)[slot] = x;
      if (blocking) prevDone = x; // the next pass waits for the send
    }
  }
  if (input.dpExposed === true && after[prog.length - 1]! > 0) {
    // After everything the stage does, its own collectives and last send included.
    const last = prog.length - 1;
    const r = b.op(OpKind.dpReduce, s, Stream.dp, after[last]!, prog.microBatch[last]!, prog.chunk[last]!, 0);
    b.edge(prevDone, r);
    b.edge(dpPrev, r);
    dpPrev = r;
  }
  return { compute: prevDone, dp: dpPrev };
}

/** ZB-V's pass lengths from the stages' mean chunk passes (a B with its recomputation), when the input gives none. */
function meanPassRatios(input: SimInput): VPassRatios {
  const mean = (f: (s: SimStage) => number) => input.stages.reduce((a, s) => a + f(s), 0) / input.stages.length;
  return vPassRatios(mean((s) => s.forwardSeconds), mean((s) => s.backwardInputSeconds + s.recomputeSeconds), mean((s) => s.backwardWeightSeconds));
}

/**
 * A pipelined step: every stage's program, the activations and gradients between virtual stages (chunk c
 * of stage s is virtual stage c p + s, Megatron-LM's layout, or ZB-V's V: spec/virtual-stages.ts), then a barrier over all stages (the
 * gradient-norm all-reduce of gradient clipping, Megatron-LM optimizer clip_grad_norm; its scalar costs
 * nothing here) and each stage's optimizer step (with dpExposed, followed by its whole ZeRO-1 gather).
 */
export function buildPipeline(input: SimInput, recordMemory = true): Built {
  const p = input.stages.length;
  const m = input.microBatches;
  const v = input.virtualStages;
  const slots = p * v * m;
  const programs = stagePrograms(input.schedule, p, m, v, input.vPassRatios ?? meanPassRatios(input));
  // Each pass: its compute, a send, and usually one blocking collective (data-parallel pieces grow past this).
  const b = new GraphBuilder(p, programs.reduce((n, prog) => n + 3 * prog.length, 4 * p + 1));
  const links: Links = {
    firstForward: new Int32Array(slots).fill(-1), firstBackward: new Int32Array(slots).fill(-1),
    doneForward: new Int32Array(slots).fill(-1), sendForward: new Int32Array(slots).fill(-1), sendBackward: new Int32Array(slots).fill(-1),
    doneBackward: new Int32Array(slots).fill(-1), receiveForward: new Int32Array(slots).fill(-1), receiveBackward: new Int32Array(slots).fill(-1),
  };
  const memory = programs.map(() => new MemoryLog(recordMemory));
  const tails = programs.map((prog, s) => emitStage(b, input, s, prog, links, memory[s]!));

  // A blocking receive starts no earlier than its sender has the data (the pass before the send): it
  // runs beside the transfer, not before it was sent.
  for (let vs = 0; vs < p * v; vs++) {
    for (let mb = 0; mb < m; mb++) {
      const slot = vs * m + mb;
      // Across GPUs the pass waits for the transfer; within one (ZB-V's turn) for the pass before it.
      if (vs > 0) {
        const send = links.sendForward[slot - m]!;
        b.edge(send >= 0 ? send : links.doneForward[slot - m]!, links.firstForward[slot]!);
        if (links.receiveForward[slot]! >= 0) b.edge(links.doneForward[slot - m]!, links.receiveForward[slot]!);
      }
      if (vs < p * v - 1) {
        const send = links.sendBackward[slot + m]!;
        b.edge(send >= 0 ? send : links.doneBackward[slot + m]!, links.firstBackward[slot]!);
        if (links.receiveBackward[slot]! >= 0) b.edge(links.doneBackward[slot + m]!, links.receiveBackward[slot]!);
      } else b.edge(links.doneForward[slot]!, links.firstBackward[slot]!);
    }
  }

  const barrier = b.op(OpKind.barrier, 0, Stream.collective, 0);
  for (const t of tails) {
    b.edge(t.compute, barrier);
    b.edge(t.dp, barrier);
  }
  // A tied embedding's gradient sum between the stages that hold a copy: each starts once both have
  // finished their backward and reduction, and the step's barrier waits for it.
  const tied = input.stages.flatMap((st, s) => ((st.tiedSyncSeconds ?? 0) > 0 ? [s] : []));
  for (const s of tied) {
    const op = b.op(OpKind.pp, s, Stream.send, input.stages[s]!.tiedSyncSeconds!, 0, 0, TIED_SYNC);
    for (const other of tied) {
      b.edge(tails[other]!.compute, op);
      b.edge(tails[other]!.dp, op);
    }
    b.edge(op, barrier);
  }
  const optimizers = new Int32Array(p);
  const optimizerStepMemory = programs.map(() => new MemoryLog(recordMemory));
  input.stages.forEach((st, s) => {
    const o = b.op(OpKind.optimizer, s, Stream.compute, st.optimizerSeconds);
    b.edge(barrier, o);
    optimizers[s] = o;
    // The step's fp32 copy of the 16-bit gradients lives while the step runs (after every backward).
    optimizerStepMemory[s]!.add(o, false, st.memory.optimizerStepBytes ?? 0);
    optimizerStepMemory[s]!.add(o, true, -(st.memory.optimizerStepBytes ?? 0));
    if (input.dpExposed === true && st.dp.gatherOnceSeconds > 0) {
      // DeepSpeed's OptimizerStep gathers ZeRO-1's updated weights before the step ends.
      const g = b.op(OpKind.dpGather, s, Stream.dp, st.dp.gatherOnceSeconds);
      b.edge(o, g);
      optimizers[s] = g;
    }
  });
  const names = input.stageNames ?? programs.map((_, s) => `stage ${s}`);
  return { builder: b, ranks: names.map((name) => ({ name, role: "stage" as const })), memory, optimizerStepMemory, stepEnds: [optimizers] };
}
