/**
 * Memory of one rank over time (its activations, or the optimizer step's gradient copy), recorded while
 * the graph is built: "at the start (or end) of operation X, add (or free) N bytes". Entries are appended
 * in the rank's program order, which is also time order on its compute stream, so after the run they
 * become a step function without sorting.
 */
export class MemoryLog {
  length = 0;
  private op = new Int32Array(64);
  private atEnd = new Uint8Array(64);
  private delta = new Float64Array(64);

  /** `record` false: a log that keeps nothing (for a caller that needs only the step's time). */
  constructor(private readonly record = true) {}

  add(op: number, atEnd: boolean, deltaBytes: number): void {
    if (deltaBytes === 0 || !this.record) return;
    if (this.length === this.op.length) {
      const size = this.length * 2;
      const op = new Int32Array(size);
      op.set(this.op);
      this.op = op;
      const atEnd = new Uint8Array(size);
      atEnd.set(this.atEnd);
      this.atEnd = atEnd;
      const delta = new Float64Array(size);
      delta.set(this.delta);
      this.delta = delta;
    }
    this.op[this.length] = op;
    this.atEnd[this.length] = atEnd ? 1 : 0;
    this.delta[this.length] = deltaBytes;
    this.length++;
  }

  /** The bytes held from each time on, and the peak, given when every operation started and ended. */
  evaluate(startSeconds: Float64Array, endSeconds: Float64Array): { timeSeconds: Float64Array; bytes: Float64Array; peakBytes: number } {
    const n = this.length;
    const times = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const op = this.op[k]!;
      times[k] = this.atEnd[k] === 1 ? endSeconds[op]! : startSeconds[op]!;
    }
    // Program order is time order on one stream; keep a stable sort as a guard for other recorders.
    let order: Int32Array | undefined;
    for (let k = 1; k < n; k++) {
      if (times[k]! < times[k - 1]!) {
        order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => times[a]! - times[b]! || a - b);
        break;
      }
    }
    const timeSeconds = new Float64Array(n);
    const bytes = new Float64Array(n);
    let held = 0;
    let peakBytes = 0;
    let out = 0;
    for (let k = 0; k < n; k++) {
      const i = order === undefined ? k : order[k]!;
      held += this.delta[i]!;
      if (held > peakBytes) peakBytes = held;
      // One point per instant: several changes at the same time keep the last value.
      if (out > 0 && timeSeconds[out - 1] === times[i]) bytes[out - 1] = held;
      else {
        timeSeconds[out] = times[i]!;
        bytes[out] = held;
        out++;
      }
    }
    return { timeSeconds: timeSeconds.slice(0, out), bytes: bytes.slice(0, out), peakBytes };
  }
}
