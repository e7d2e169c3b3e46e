import { attachFabric } from "../comm/endpoint.js";
import type { Tf } from "../model/ops.js";
import { upperMedian } from "./stats.js";
import { loadBackend, type BackendChoice } from "../run/backend.js";
import type { Program } from "../run/protocol.js";

/**
 * Matrix-multiply throughput of one TensorFlow.js rank: median seconds of an n x n x n float32 product
 * (read back with dataSync, as the executor does), and the rate over a fixed time. The worker program
 * starts every rank's timed loop after a barrier, to measure ranks running side by side.
 */
export function matmulSeconds(tf: Tf, n: number, repeats: number): number {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const once = () => {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
  };
  for (let i = 0; i < 3; i++) once();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    once();
    times.push((performance.now() - t0) / 1e3);
  }
  a.dispose();
  b.dispose();
  return upperMedian(times);
}

/** Floating-point operations per second of back-to-back n x n products for `seconds`. */
export function matmulRate(tf: Tf, n: number, seconds: number): number {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  let count = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    count++;
  }
  const elapsed = (performance.now() - t0) / 1e3;
  a.dispose();
  b.dispose();
  return (2 * n ** 3 * count) / elapsed;
}

export interface MatmulPayload {
  readonly backend: BackendChoice;
  readonly n: number;
  readonly seconds: number;
}

export const matmulProgram: Program = async (input) => {
  const p = input.payload as MatmulPayload;
  const ep = attachFabric(input.memory, input.fabric, input.rank, input.timeoutSeconds);
  const { tf } = await loadBackend(p.backend, input.fabric.ranks);
  matmulRate(tf, p.n, 0.2);
  ep.group(input.fabric.groups[0]!.name).barrier();
  return matmulRate(tf, p.n, p.seconds);
};
