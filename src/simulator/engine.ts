import type { Graph } from "./graph.js";

/** When each operation ran, and which operation made it wait last (its critical predecessor). */
export interface RunResult {
  readonly startSeconds: Float64Array;
  readonly endSeconds: Float64Array;
  /** The predecessor whose end started this op (a dependency, or the op that freed its resource), or -1. */
  readonly critical: Int32Array;
  /** The op that ends last (lowest id among ties). */
  readonly lastOp: number;
  readonly spanSeconds: number;
  /** Completion events processed (one per operation). */
  readonly events: number;
}

/** The schedule cannot finish: some operations wait on each other (a bug in a schedule generator). */
export class DeadlockError extends Error {
  constructor(done: number, size: number) {
    super(`simulation deadlocked: ${size - done} of ${size} operations never became ready`);
    this.name = "DeadlockError";
  }
}

/**
 * Discrete-event simulation of a graph. An operation starts when every predecessor has ended and, if it
 * needs a first-come-first-served resource, when that resource is free; a collective is one operation
 * whose predecessors are its members' previous operations, so it starts when all members are ready.
 * Events (operation completions) come off a binary min-heap keyed by (time, id), so ties resolve the same
 * way on every run. All state lives in typed arrays allocated once: the loop allocates nothing.
 */
export function runGraph(g: Graph): RunResult {
  const n = g.size;
  const dur = g.durationSeconds;
  const fifo = g.fifo;
  const succStart = g.succStart;
  const succ = g.succ;
  const pending = g.indegree.slice();
  const start = new Float64Array(n);
  const end = new Float64Array(n);
  const critical = new Int32Array(n).fill(-1);
  const busy = new Uint8Array(g.resources);
  const qHead = new Int32Array(g.resources).fill(-1);
  const qTail = new Int32Array(g.resources).fill(-1);
  const qNext = new Int32Array(n);
  const heapTime = new Float64Array(n);
  const heapId = new Int32Array(n);
  let heapSize = 0;

  // Two steps recur below, written out where they occur rather than as closures, so that a fresh
  // process's first runs (before the optimising compiler) make no calls per event:
  // - ready(op, t): an op whose predecessors have ended starts, or queues behind its busy
  //   first-come-first-served resource;
  // - launch(op, t): starting an op pushes its completion event on the heap (sift up, parent at (i - 1) >> 1).

  for (let op = 0; op < n; op++) {
    if (pending[op] !== 0) continue;
    const r = fifo[op]!;
    if (r >= 0) {
      if (busy[r] === 1) {
        qNext[op] = -1;
        if (qTail[r]! < 0) qHead[r] = op;
        else qNext[qTail[r]!] = op;
        qTail[r] = op;
        continue;
      }
      busy[r] = 1;
    }
    // launch(op, 0)
    start[op] = 0;
    const e = 0 + dur[op]!;
    end[op] = e;
    let i = heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = heapTime[parent]!;
      if (pt < e || (pt === e && heapId[parent]! < op)) break;
      heapTime[i] = pt;
      heapId[i] = heapId[parent]!;
      i = parent;
    }
    heapTime[i] = e;
    heapId[i] = op;
  }

  let done = 0;
  let lastOp = -1;
  let span = 0;
  while (heapSize > 0) {
    // Pop the earliest completion and sift the last element down.
    const op = heapId[0]!;
    const t = heapTime[0]!;
    const size = --heapSize;
    if (size > 0) {
      const lt = heapTime[size]!;
      const lid = heapId[size]!;
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= size) break;
        const c2 = c + 1;
        if (c2 < size && (heapTime[c2]! < heapTime[c]! || (heapTime[c2] === heapTime[c] && heapId[c2]! < heapId[c]!))) c = c2;
        const ct = heapTime[c]!;
        if (lt < ct || (lt === ct && lid < heapId[c]!)) break;
        heapTime[i] = ct;
        heapId[i] = heapId[c]!;
        i = c;
      }
      heapTime[i] = lt;
      heapId[i] = lid;
    }
    done++;
    if (t > span || lastOp < 0 || (t === span && op < lastOp)) {
      span = t;
      lastOp = op;
    }
    // Free its first-come-first-served resource for the longest-waiting op.
    const r = fifo[op]!;
    if (r >= 0) {
      const next = qHead[r]!;
      if (next >= 0) {
        qHead[r] = qNext[next]!;
        if (qHead[r]! < 0) qTail[r] = -1;
        critical[next] = op;
        // launch(next, t)
        start[next] = t;
        const e = t + dur[next]!;
        end[next] = e;
        let i = heapSize++;
        while (i > 0) {
          const parent = (i - 1) >> 1;
          const pt = heapTime[parent]!;
          if (pt < e || (pt === e && heapId[parent]! < next)) break;
          heapTime[i] = pt;
          heapId[i] = heapId[parent]!;
          i = parent;
        }
        heapTime[i] = e;
        heapId[i] = next;
      } else {
        busy[r] = 0;
      }
    }
    for (let k = succStart[op]!, kEnd = succStart[op + 1]!; k < kEnd; k++) {
      const s = succ[k]!;
      if (--pending[s]! !== 0) continue;
      critical[s] = op;
      // ready(s, t): start it, or queue it behind its busy resource
      const rs = fifo[s]!;
      if (rs >= 0) {
        if (busy[rs] === 1) {
          qNext[s] = -1;
          if (qTail[rs]! < 0) qHead[rs] = s;
          else qNext[qTail[rs]!] = s;
          qTail[rs] = s;
          continue;
        }
        busy[rs] = 1;
      }
      // launch(s, t)
      start[s] = t;
      const e = t + dur[s]!;
      end[s] = e;
      let i = heapSize++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        const pt = heapTime[parent]!;
        if (pt < e || (pt === e && heapId[parent]! < s)) break;
        heapTime[i] = pt;
        heapId[i] = heapId[parent]!;
        i = parent;
      }
      heapTime[i] = e;
      heapId[i] = s;
    }
  }
  if (done !== n) throw new DeadlockError(done, n);
  return { startSeconds: start, endSeconds: end, critical, lastOp, spanSeconds: span, events: done };
}
