import type { EffectiveLink } from "./placement.js";

/**
 * Bytes each GPU sends, and the time on its link, for one collective over n ranks on a buffer of
 * `bytes`, in the alpha-beta model with ring algorithms: all-reduce sends 2(n-1)/n of the buffer in
 * 2(n-1) steps, all-gather and reduce-scatter (n-1)/n in n-1 steps (NCCL's bus-bandwidth convention,
 * nccl-tests doc/PERFORMANCE.md); all-to-all (n-1)/n in n-1 steps; a point-to-point send the whole buffer.
 */
export type CollectiveKind = "all-reduce" | "all-gather" | "reduce-scatter" | "all-to-all" | "send";

export interface CollectiveCost {
  readonly bytes: number;
  readonly seconds: number;
}

export const FREE: CollectiveCost = { bytes: 0, seconds: 0 };

export function collective(kind: CollectiveKind, n: number, bytes: number, link: EffectiveLink): CollectiveCost {
  if (kind === "send") return { bytes, seconds: link.latencySeconds + bytes / link.bytesPerSecond };
  if (n <= 1 || bytes <= 0) return FREE;
  const ring = kind === "all-reduce" ? 2 : 1;
  const sent = (ring * (n - 1) * bytes) / n;
  return { bytes: sent, seconds: ring * (n - 1) * link.latencySeconds + sent / link.bytesPerSecond };
}

export function times(c: CollectiveCost, count: number): CollectiveCost {
  return { bytes: c.bytes * count, seconds: c.seconds * count };
}

export function plus(a: CollectiveCost, b: CollectiveCost): CollectiveCost {
  return { bytes: a.bytes + b.bytes, seconds: a.seconds + b.seconds };
}
