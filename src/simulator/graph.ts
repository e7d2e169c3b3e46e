import { STREAMS, type OpKindCode } from "./types.js";

/**
 * The operation graph the engine runs, in flat typed arrays (struct of arrays, compressed sparse rows for
 * the edges): no object per operation, so a million operations cost a few tens of megabytes and the
 * engine's loop touches only numbers.
 */
export interface Graph {
  readonly size: number;
  readonly durationSeconds: Float64Array;
  /** Resource (rank * STREAMS + stream) served first come first served that the op also needs, or -1. */
  readonly fifo: Int32Array;
  /** Successors of op i are succ[succStart[i] .. succStart[i + 1]). */
  readonly succStart: Int32Array;
  readonly succ: Int32Array;
  readonly indegree: Int32Array;
  readonly resources: number;
}

/** Operation columns the builder fills besides the graph itself (see OpTable). */
export interface OpColumns {
  readonly kind: Uint8Array;
  readonly rank: Int32Array;
  readonly stream: Uint8Array;
  readonly microBatch: Int32Array;
  readonly chunk: Int32Array;
  readonly index: Int32Array;
}


function grow<T extends Float64Array | Int32Array | Uint8Array>(a: T, size: number): T {
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}

/** Appends operations and dependency edges; `freeze` packs them for the engine. Ids are dense from 0. */
export class GraphBuilder {
  private n = 0;
  private e = 0;
  private dur: Float64Array;
  private fifoRes: Int32Array;
  private kind: Uint8Array;
  private rank: Int32Array;
  private stream: Uint8Array;
  private mb: Int32Array;
  private chunk: Int32Array;
  private index: Int32Array;
  private from: Int32Array;
  private to: Int32Array;

  /** `expectedOps` sizes the columns up front (they double when it is exceeded); edges get twice as many. */
  constructor(private readonly ranks: number, expectedOps = 1024) {
    const n = Math.max(16, Math.ceil(expectedOps));
    this.dur = new Float64Array(n);
    this.fifoRes = new Int32Array(n);
    this.kind = new Uint8Array(n);
    this.rank = new Int32Array(n);
    this.stream = new Uint8Array(n);
    this.mb = new Int32Array(n);
    this.chunk = new Int32Array(n);
    this.index = new Int32Array(n);
    this.from = new Int32Array(2 * n);
    this.to = new Int32Array(2 * n);
  }

  get size(): number {
    return this.n;
  }

  /** A new operation; returns its id. */
  op(kind: OpKindCode, rank: number, stream: number, seconds: number, microBatch = 0, chunk = 0, index = 0): number {
    if (this.n === this.dur.length) {
      const size = this.n * 2;
      this.dur = grow(this.dur, size);
      this.fifoRes = grow(this.fifoRes, size);
      this.kind = grow(this.kind, size);
      this.rank = grow(this.rank, size);
      this.stream = grow(this.stream, size);
      this.mb = grow(this.mb, size);
      this.chunk = grow(this.chunk, size);
      this.index = grow(this.index, size);
    }
    const id = this.n++;
    this.dur[id] = seconds;
    this.fifoRes[id] = -1;
    this.kind[id] = kind;
    this.rank[id] = rank;
    this.stream[id] = stream;
    this.mb[id] = microBatch;
    this.chunk[id] = chunk;
    this.index[id] = index;
    return id;
  }

  /** Makes `op` also hold (rank, stream), a resource that serves waiting operations in arrival order. */
  fifo(op: number, rank: number, stream: number): void {
    this.fifoRes[op] = rank * STREAMS + stream;
  }

  /** `to` cannot start before `from` ends; a negative `from` (no predecessor) is ignored. */
  edge(from: number, to: number): void {
    if (from < 0) return;
    if (this.e === this.from.length) {
      this.from = grow(this.from, this.e * 2);
      this.to = grow(this.to, this.e * 2);
    }
    this.from[this.e] = from;
    this.to[this.e] = to;
    this.e++;
  }

  freeze(): { graph: Graph; columns: OpColumns } {
    const n = this.n;
    const succStart = new Int32Array(n + 1);
    const indegree = new Int32Array(n);
    for (let i = 0; i < this.e; i++) {
      succStart[this.from[i]! + 1]!++;
      indegree[this.to[i]!]!++;
    }
    for (let i = 0; i < n; i++) succStart[i + 1]! += succStart[i]!;
    const fill = succStart.slice(0, n);
    const succ = new Int32Array(this.e);
    for (let i = 0; i < this.e; i++) succ[fill[this.from[i]!]!++] = this.to[i]!;
    return {
      graph: {
        size: n, durationSeconds: this.dur.subarray(0, n), fifo: this.fifoRes.subarray(0, n),
        succStart, succ, indegree, resources: this.ranks * STREAMS,
      },
      columns: {
        kind: this.kind.subarray(0, n), rank: this.rank.subarray(0, n), stream: this.stream.subarray(0, n),
        microBatch: this.mb.subarray(0, n), chunk: this.chunk.subarray(0, n), index: this.index.subarray(0, n),
      },
    };
  }
}
