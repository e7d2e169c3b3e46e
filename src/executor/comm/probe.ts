import { upperMedian } from "../measure/stats.js";
import type { Program } from "../run/protocol.js";
import { attachFabric } from "./endpoint.js";
import type { TrafficSnapshot } from "./traffic.js";

/**
 * A worker program that runs a script of collectives on deterministic inputs and returns what came out,
 * how long each took and what it sent: the collectives' tests, their fault tests and their benchmark.
 * Rank r's input element i is r + 1 + i / 1024 (exact in float32 for the sizes used).
 */
export type ProbeOp =
  | { readonly op: "all-reduce" | "all-reduce-max" | "reduce-scatter" | "all-gather" | "all-to-all" | "all-reduce-slot" | "all-gather-slot" | "all-reduce-view" | "reduce-scatter-view" | "all-gather-view"; readonly group: string; readonly n: number }
  /**
   * The gradient bucket's collectives (Group.bucket): the input is written into floats [offset, offset + n)
   * of this member's bucket (input of rank r + salt), then reduced in place; `readDelayMs` stalls this
   * member just before its last read of the others' buckets (the window a closing sync must cover).
   */
  | {
    readonly op: "all-reduce-bucket" | "reduce-scatter-bucket"; readonly group: string; readonly n: number;
    readonly offset?: number; readonly salt?: number; readonly readDelayMs?: number;
  }
  | { readonly op: "send"; readonly to: number; readonly tag: number; readonly n: number }
  | { readonly op: "recv"; readonly from: number; readonly tag: number }
  | { readonly op: "barrier"; readonly group: string }
  | { readonly op: "throw" | "exit" | "hang" };

export interface ProbePayload {
  readonly script: readonly ProbeOp[];
  /** Times each op runs (the last run's output is kept); default 1. */
  readonly repeat?: number;
  /** Keep outputs (false for benchmarks). */
  readonly keepOutputs?: boolean;
  /** Refill the input before every repeat (default true); false times the collectives back to back, as nccl-tests does. */
  readonly refill?: boolean;
}

export interface ProbeResult {
  readonly outputs: (number[] | null)[];
  /** Median seconds per run of each op. */
  readonly seconds: number[];
  readonly traffic: TrafficSnapshot;
}

export function probeInput(rank: number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rank + 1 + i / 1024;
  return x;
}

export const probeProgram: Program = async (input) => {
  const payload = input.payload as ProbePayload;
  const ep = attachFabric(input.memory, input.fabric, input.rank, input.timeoutSeconds);
  const outputs: (number[] | null)[] = [];
  const seconds: number[] = [];
  const repeat = payload.repeat ?? 1;
  for (const op of payload.script) {
    let out: Float32Array | null = null;
    const times: number[] = [];
    const inputs = "n" in op ? probeInput(input.rank + ("salt" in op ? op.salt ?? 0 : 0), op.n) : null;
    for (let r = 0; r < repeat; r++) {
      const fill = r === 0 || payload.refill !== false;
      const x = inputs === null ? null : fill ? inputs.slice() : inputs;
      const t0 = performance.now();
      switch (op.op) {
        case "all-reduce": out = ep.group(op.group).allReduce(x!, "probe"); break;
        case "all-reduce-max": out = ep.group(op.group).allReduce(x!, "probe", "max"); break;
        case "reduce-scatter": out = ep.group(op.group).reduceScatter(x!, "probe"); break;
        case "all-gather": {
          const g = ep.group(op.group);
          const b = g.block(op.n);
          out = g.allGather(x!.subarray(b.first, b.end), op.n, "probe");
          break;
        }
        case "all-to-all": out = ep.group(op.group).allToAll(x!, "probe"); break;
        // The training path's forms (copy in once, in place, result read from the slot).
        case "all-reduce-view": out = ep.group(op.group).allReduceView(x!, "probe"); break;
        case "reduce-scatter-view": out = ep.group(op.group).reduceScatterView(x!, "probe"); break;
        case "all-gather-view": {
          const g = ep.group(op.group);
          const b = g.block(op.n);
          out = g.allGatherView(x!.subarray(b.first, b.end), op.n, "probe");
          break;
        }
        case "all-reduce-slot": {
          const g = ep.group(op.group);
          if (fill) g.nextSlot(op.n).set(x!);
          const t1 = performance.now();
          out = g.allReduceSlot(op.n, "probe");
          times.push((performance.now() - t1) / 1e3);
          continue;
        }
        case "all-gather-slot": {
          const g = ep.group(op.group);
          const b = g.block(op.n);
          if (fill) g.nextSlot(op.n).set(x!.subarray(b.first, b.end), b.first);
          const t1 = performance.now();
          out = g.allGatherSlot(op.n, "probe");
          times.push((performance.now() - t1) / 1e3);
          continue;
        }
        // The training path's gradient reduction: accumulated in the bucket, reduced in place, read in place.
        case "all-reduce-bucket":
        case "reduce-scatter-bucket": {
          const g = ep.group(op.group);
          const offset = op.offset ?? 0;
          if (fill) g.bucket(offset, op.n).set(x!);
          g.readDelayMs = op.readDelayMs ?? 0;
          const t1 = performance.now();
          out = op.op === "all-reduce-bucket" ? g.allReduceBucket(offset, op.n, "probe") : g.reduceScatterBucket(offset, op.n, "probe");
          times.push((performance.now() - t1) / 1e3);
          g.readDelayMs = 0;
          continue;
        }
        case "send": ep.channel(input.rank, op.to).send(op.tag, x!, "probe"); break;
        case "recv": out = ep.channel(op.from, input.rank).recv(op.tag, "probe"); break;
        case "barrier": ep.group(op.group).barrier(); break;
        case "throw": throw new Error("injected fault");
        case "exit": process.exit(3);
        // eslint-disable-next-line no-fallthrough
        case "hang": Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); break;
      }
      times.push((performance.now() - t0) / 1e3);
    }
    outputs.push(payload.keepOutputs === false || out === null ? null : Array.from(out as Float32Array));
    seconds.push(upperMedian(times));
  }
  return { outputs, seconds, traffic: ep.traffic.snapshot() } satisfies ProbeResult;
};
