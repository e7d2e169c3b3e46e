import { OpKind, RECV_ACTIVATION, RECV_GRADIENT, SEND_ACTIVATION, STREAMS, Stream, TIED_SYNC, type OpTable, type RankRole, type Timeline } from "./types.js";

/**
 * Chrome trace-event JSON (the Trace Event Format, as chrome://tracing and Perfetto read it): one process
 * per rank, one thread per stream; each operation is a complete event (ph "X") on its stream's thread
 * and, for a transfer, also on the peer's; ph "M" events name processes and threads; ph "C" counters
 * give activation memory and, beside it, the optimizer step's transient memory (its fp32 gradient copy).
 * Times are microseconds with nanosecond resolution. Operations on one stream
 * never overlap in the simulation, and rounding to whole nanoseconds keeps it so (rounding is monotonic).
 * Every event carries name, ph, ts, dur, pid and tid (zero where the format ignores them).
 */

const STREAM_NAMES: Record<RankRole, readonly string[]> = {
  stage: ["compute", "tp/cp/ep collectives", "dp comm", "pp send", "pp recv"],
  worker: ["compute", "tp/cp/ep collectives", "push/pull", "pp send", "pp recv"],
  server: ["update", "-", "-", "-", "link (queue)"],
};

const ns = (seconds: number) => Math.round(seconds * 1e9);
const us = (nanoseconds: number) => (nanoseconds / 1e3).toFixed(3);

/** Event name of an operation as its own stream (or, with `asPeer`, the peer's) shows it. */
export function opName(t: Timeline, op: number, asPeer: boolean): string {
  const o = t.ops;
  const mb = o.microBatch[op]!;
  const chunk = o.chunk[op]!;
  const suffix = t.schedule === "interleaved" ? `.${chunk}` : "";
  const rankName = (r: number) => t.ranks[r]?.name ?? `rank ${r}`;
  switch (o.kind[op]) {
    case OpKind.forward: return `F${mb}${suffix}`;
    case OpKind.backward: return `B${mb}${suffix}`;
    case OpKind.weight: return `W${mb}${suffix}`;
    case OpKind.optimizer: return "optimizer";
    case OpKind.tp: return "tp collectives";
    case OpKind.cp: return "cp ring (exposed)";
    case OpKind.ep: return "ep all-to-all";
    case OpKind.pp: {
      const index = o.index[op]!;
      if (index === TIED_SYNC) return "tied embedding gradient all-reduce";
      const activation = index === SEND_ACTIVATION || index === RECV_ACTIVATION;
      const what = `${activation ? "act" : "grad"} ${mb}${suffix}`;
      if (index === RECV_ACTIVATION || index === RECV_GRADIENT) {
        // A blocking receive on the receiver's own compute stream: from the previous stage (activations) or the next.
        const p = t.ranks.length;
        const from = activation ? (o.rank[op]! - 1 + p) % p : (o.rank[op]! + 1) % p;
        return `recv ${what} from ${rankName(from)} (blocking)`;
      }
      return asPeer ? `recv ${what} from ${rankName(o.rank[op]!)}` : `send ${what} to ${rankName(Math.floor(o.peer[op]! / STREAMS))}`;
    }
    case OpKind.dpGather: return `all-gather bucket ${o.index[op]}`;
    case OpKind.dpReduce: return `reduce bucket ${o.index[op]}`;
    case OpKind.psPush: return asPeer ? `push from ${rankName(o.rank[op]!)}` : `push to server ${chunk}`;
    case OpKind.psPull: return asPeer ? `pull by ${rankName(o.rank[op]!)}` : `pull from server ${chunk}`;
    case OpKind.psUpdate: return mb >= 0 ? `update for ${rankName(mb)}` : "update";
    default: return "barrier";
  }
}

function metadata(name: string, pid: number, tid: number, args: Record<string, string | number>): string {
  return JSON.stringify({ name, ph: "M", ts: 0, dur: 0, pid, tid, args });
}

/** Which (rank, stream) pairs carry any operation with a duration. */
function usedStreams(ops: OpTable, ranks: number): Uint8Array {
  const used = new Uint8Array(ranks * STREAMS);
  for (let r = 0; r < ranks; r++) used[r * STREAMS + Stream.compute] = 1;
  for (let op = 0; op < ops.size; op++) {
    if (ops.endSeconds[op]! <= ops.startSeconds[op]!) continue;
    used[ops.rank[op]! * STREAMS + ops.stream[op]!] = 1;
    if (ops.peer[op]! >= 0) used[ops.peer[op]!] = 1;
  }
  return used;
}

/** The trace as text chunks (write them in order): a large step does not need one giant string. */
export function* traceChunks(t: Timeline): Generator<string> {
  const ops = t.ops;
  const used = usedStreams(ops, t.ranks.length);
  yield '{"displayTimeUnit":"ms","otherData":{"generator":"meshplan simulate"},"traceEvents":[\n';
  const head: string[] = [];
  t.ranks.forEach((r, i) => {
    const pid = i + 1;
    head.push(metadata("process_name", pid, 0, { name: r.name }), metadata("process_sort_index", pid, 0, { sort_index: i }));
    for (let s = 0; s < STREAMS; s++) {
      if (used[i * STREAMS + s] !== 1) continue;
      head.push(metadata("thread_name", pid, s + 1, { name: STREAM_NAMES[r.role][s]! }), metadata("thread_sort_index", pid, s + 1, { sort_index: s }));
    }
  });
  yield head.join(",\n");

  let batch: string[] = [];
  const span = (op: number, resource: number, asPeer: boolean) => {
    const start = ns(ops.startSeconds[op]!);
    const pid = Math.floor(resource / STREAMS) + 1;
    const tid = (resource % STREAMS) + 1;
    batch.push(`{"name":${JSON.stringify(opName(t, op, asPeer))},"ph":"X","ts":${us(start)},"dur":${us(ns(ops.endSeconds[op]!) - start)},` +
      `"pid":${pid},"tid":${tid},"args":{"op":${op},"microBatch":${ops.microBatch[op]},"chunk":${ops.chunk[op]},"index":${ops.index[op]}}}`);
  };
  for (let op = 0; op < ops.size; op++) {
    if (ops.endSeconds[op]! <= ops.startSeconds[op]!) continue; // zero-length ops (free transfers, the barrier) draw nothing
    const own = ops.rank[op]! * STREAMS + ops.stream[op]!;
    span(op, own, false);
    if (ops.peer[op]! >= 0 && ops.peer[op] !== own) span(op, ops.peer[op]!, true);
    if (batch.length >= 4096) {
      yield ",\n" + batch.join(",\n");
      batch = [];
    }
  }
  if (batch.length > 0) yield ",\n" + batch.join(",\n");

  for (let i = 0; i < t.ranks.length; i++) {
    const r = t.ranks[i]!;
    const counters: string[] = [];
    for (const [name, mem] of [["activation memory", r.memory], ["optimizer step memory", r.optimizerStepMemory]] as const) {
      for (let k = 0; k < mem.timeSeconds.length; k++) {
        counters.push(`{"name":"${name}","ph":"C","ts":${us(ns(mem.timeSeconds[k]!))},"dur":0,"pid":${i + 1},"tid":0,"args":{"bytes":${mem.bytes[k]}}}`);
      }
    }
    if (counters.length > 0) yield ",\n" + counters.join(",\n");
  }
  yield "\n]}\n";
}
