import { attachFabric } from "../comm/endpoint.js";
import type { FabricSpec } from "../comm/fabric.js";
import type { Tensor } from "@tensorflow/tfjs";
import type { Tf } from "../model/ops.js";
import { loadBackend, type BackendChoice } from "../run/backend.js";
import { launch } from "../run/launch.js";
import type { Program } from "../run/protocol.js";
import { mean } from "./stats.js";

/**
 * How long a rank waits at a collective for the other members while every core runs one: the segments of
 * a pass between two blocking tensor- or context-parallel collectives (0.1 to 1 ms in the executor's small
 * models) vary, and a blocked rank takes time to wake, so each collective costs its members more than its
 * transfer. Measured directly: one worker per core, in pairs, starts after a barrier; each times `count`
 * segments of each target length in turn, a chain of the executor's kind of kernels (a [32 x 64] by
 * [64 x 64] product and a tanh, as in a small layer) read back at its end as a collective reads its input,
 * then meets its pair at a barrier, timed too. Per length: the mean segment (as measured: the targets are
 * approximate) and the mean wait, the first tenth of each worker's segments left out. The wait includes
 * the barrier's own hand-over, which the cost model also charges each collective as link latency (a few
 * microseconds per step on this machine): counted twice, a small share of the waits. simulate.ts PassJitter adds the wait at every sync point.
 */
export interface SegmentPayload {
  readonly backend: BackendChoice;
  /** Segment lengths to time, in seconds. */
  readonly targetSeconds: readonly number[];
  /** Segments of each length. */
  readonly count: number;
}

export interface SyncWaitPoint {
  readonly segmentSeconds: number;
  readonly waitSeconds: number;
}

const ROWS = 32;
const WIDTH = 64;

function chain(tf: Tf, x: Tensor, w: Tensor, links: number): void {
  const out = tf.tidy(() => {
    let y = x;
    for (let i = 0; i < links; i++) y = tf.tanh(tf.matMul(y, w));
    return y;
  });
  out.dataSync();
  out.dispose();
}

export const segmentProgram: Program = async (input) => {
  const p = input.payload as SegmentPayload;
  const ep = attachFabric(input.memory, input.fabric, input.rank, input.timeoutSeconds);
  const { tf } = await loadBackend(p.backend, input.fabric.ranks);
  const x = tf.randomNormal([ROWS, WIDTH]);
  const w = tf.tidy(() => tf.mul(tf.randomNormal([WIDTH, WIDTH]), 1 / Math.sqrt(WIDTH)));
  const group = ep.group(input.fabric.groups.find((g) => g.members.includes(input.rank))!.name);
  group.barrier();
  // Links per segment from the time of one link once warm, with every worker running; the group agrees on
  // the slowest member's figure, so its members do the same work and only its spread makes them wait.
  chain(tf, x, w, 50);
  const t0 = performance.now();
  chain(tf, x, w, 200);
  const linkSeconds = group.allReduce(new Float32Array([(performance.now() - t0) / 1e3 / 200]), "probe", "max")[0]!;
  const links = p.targetSeconds.map((s) => Math.max(1, Math.round(s / linkSeconds)));
  const times = p.targetSeconds.map(() => [] as number[]);
  const waits = p.targetSeconds.map(() => [] as number[]);
  for (let i = 0; i < p.count; i++) {
    links.forEach((n, j) => {
      const start = performance.now();
      chain(tf, x, w, n);
      const end = performance.now();
      group.barrier();
      times[j]!.push((end - start) / 1e3);
      waits[j]!.push((performance.now() - end) / 1e3);
    });
  }
  x.dispose();
  w.dispose();
  return { times, waits };
};

/**
 * Runs the probe on `ranks` workers (one per core, at least 2), in pairs (with an odd count the last group
 * has three, so every core stays busy with the same kind of work, and its figures are used only when there
 * is no pair: 3 cores), and reports each target length's mean segment as measured and mean wait at the
 * group's barrier, in the order of the targets, with the group size they are for.
 */
export async function syncWaits(backend: BackendChoice, ranks: number, targetSeconds: readonly number[], count: number): Promise<{ members: number; points: SyncWaitPoint[] }> {
  if (ranks < 2) throw new RangeError(`sync waits: ranks = ${ranks}; want at least 2`);
  const all = Array.from({ length: ranks }, (_, r) => r);
  const groupCount = Math.floor(ranks / 2);
  const groups = Array.from({ length: groupCount }, (_, i) => ({
    name: `group ${i}`, kind: "dp" as const, members: all.slice(2 * i, i === groupCount - 1 ? ranks : 2 * i + 2), capacityFloats: 16,
  }));
  const fabric: FabricSpec = { ranks, groups, channels: [] };
  const payload: SegmentPayload = { backend, targetSeconds, count };
  const res = (await launch({ fabric, timeoutSeconds: 120, ranks: all.map(() => ({ program: "segments" as const, payload })) })) as { times: number[][]; waits: number[][] }[];
  const members = ranks === 3 ? 3 : 2;
  const used = groups.filter((g) => g.members.length === members).flatMap((g) => g.members.map((r) => res[r]!));
  const skip = Math.floor(count / 10);
  const points = targetSeconds.map((_, j) => ({
    segmentSeconds: mean(used.flatMap((r) => r.times[j]!.slice(skip))),
    waitSeconds: mean(used.flatMap((r) => r.waits[j]!.slice(skip))),
  }));
  return { members, points };
}
