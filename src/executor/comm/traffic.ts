import { COMM_KINDS, type CommKind } from "./fabric.js";

/**
 * What one rank sent and how long it spent communicating, by kind (tp, cp, pp, dp, ep) and by purpose
 * (why the collective ran, e.g. "tp.layer" or "tp.sp-regather"; see src/executor/README.md).
 *
 * Bytes are the bytes this rank sends, as NCCL's bus-bandwidth convention counts them (nccl-tests
 * doc/PERFORMANCE.md) and as the cost model's `bytesPerGpuPerStep` does: over shared memory a rank
 * "sends" what its peers read out of its slot. For a buffer of n elements split in g blocks of which this
 * rank owns block b: all-reduce n + (g - 2) b (2(g-1)/g n when blocks are equal), reduce-scatter and
 * all-to-all n - b, all-gather (g - 1) b, send n; 4 bytes per float32 element.
 */
export interface KindTotals {
  readonly bytes: number;
  readonly seconds: number;
  /** Of `seconds`, blocked waiting for peers. */
  readonly idleSeconds: number;
  readonly calls: number;
}

export type TrafficSnapshot = {
  readonly byKind: Readonly<Record<CommKind, KindTotals>>;
  /** Bytes by purpose ("kind.reason"). */
  readonly byPurpose: Readonly<Record<string, number>>;
};

const ZERO: KindTotals = { bytes: 0, seconds: 0, idleSeconds: 0, calls: 0 };

export class Traffic {
  private byKind = new Map<CommKind, KindTotals>();
  private byPurpose = new Map<string, number>();

  record(kind: CommKind, purpose: string, bytes: number, seconds: number, idleSeconds: number): void {
    const t = this.byKind.get(kind) ?? ZERO;
    this.byKind.set(kind, { bytes: t.bytes + bytes, seconds: t.seconds + seconds, idleSeconds: t.idleSeconds + idleSeconds, calls: t.calls + 1 });
    if (bytes > 0) this.byPurpose.set(purpose, (this.byPurpose.get(purpose) ?? 0) + bytes);
  }

  snapshot(): TrafficSnapshot {
    const byKind = Object.fromEntries(COMM_KINDS.map((k) => [k, this.byKind.get(k) ?? ZERO])) as Record<CommKind, KindTotals>;
    return { byKind, byPurpose: Object.fromEntries(this.byPurpose) };
  }

  reset(): void {
    this.byKind.clear();
    this.byPurpose.clear();
  }
}
