import { attachFabric } from "../comm/endpoint.js";
import type { FabricSpec } from "../comm/fabric.js";
import type { Tensor } from "@tensorflow/tfjs";
import type { Tf } from "../model/ops.js";
import { loadBackend, type BackendChoice } from "../run/backend.js";
import { launch } from "../run/launch.js";
import type { Program } from "../run/protocol.js";
import { total } from "./stats.js";

/**
 * How long a rank waits at a collective for the other members while every core runs one: the segments of
 * a pass between two blocking tensor- or context-parallel collectives (0.1 to 1 ms in the executor's small
 * models) vary, and a blocked rank takes time to wake, so each collective costs its members more than its
 * transfer. Measured directly: one worker per core, in pairs, starts after a barrier; each times `count`
 * segments of each target length in turn, a chain of the executor's kind of kernels (a [32 x 64] by
 * [64 x 64] product and a tanh, as in a small layer) read back at its end as a collective reads its input,
 * then meets its pair at a barrier, timed too. Per length: the mean segment and the mean wait, the first
 * tenth of each worker's segments left out. simulate.ts PassJitter adds the wait at every sync point.
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
  const w = tf.mul(tf.randomNormal([WIDTH, WIDTH]), 1 / Math.sqrt(WIDTH));
  // Links per segment, from the time of one link once warm.
  chain(tf, x, w, 50);
  const t0 = performance.now();
  chain(tf, x, w, 200);
  const linkSeconds = (performance.now() - t0) / 1e3 / 200;
  const links = p.targetSeconds.map((s) => Math.max(1, Math.round(s / linkSeconds)));
  const group = ep.group(input.fabric.groups.find((g) => g.members.includes(input.rank))!.name);
  group.barrier();
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
 * Runs the probe on `ranks` workers (one per core; pairs, and an odd one out alone to keep its core busy,
 * its figures unused) and reports each length's mean segment and wait at the pair's barrier, shortest first.
 */
export async function syncWaits(backend: BackendChoice, ranks: number, targetSeconds: readonly number[], count: number): Promise<SyncWaitPoint[]> {
  const members = Array.from({ length: ranks }, (_, r) => r);
  const pairs = Math.floor(ranks / 2);
  const groups = Array.from({ length: Math.ceil(ranks / 2) }, (_, i) => ({ name: `pair ${i}`, kind: "dp" as const, members: members.slice(2 * i, 2 * i + 2), capacityFloats: 16 }));
  const fabric: FabricSpec = { ranks, groups, channels: [] };
  const payload: SegmentPayload = { backend, targetSeconds, count };
  const res = (await launch({ fabric, timeoutSeconds: 120, ranks: members.map(() => ({ program: "segments" as const, payload })) })) as { times: number[][]; waits: number[][] }[];
  const paired = res.slice(0, 2 * pairs);
  const skip = Math.floor(count / 10);
  const mean = (xs: number[]) => total(xs) / xs.length;
  return targetSeconds
    .map((_, j) => ({
      segmentSeconds: mean(paired.flatMap((r) => r.times[j]!.slice(skip))),
      waitSeconds: mean(paired.flatMap((r) => r.waits[j]!.slice(skip))),
    }))
    .sort((a, b) => a.segmentSeconds - b.segmentSeconds);
}
