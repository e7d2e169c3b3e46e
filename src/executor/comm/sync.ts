import { CONTROL, STATUS, STATUS_WORDS } from "./fabric.js";

/**
 * Blocking waits on the fabric's control words with Atomics.wait, a timeout and an abort flag, and the
 * typed errors a rank reports. Waits sleep in slices so a rank notices the coordinator's abort within
 * one slice even when nobody notifies the word it waits on.
 */

/** What a rank is doing, as a code in its status words (read by the coordinator when a rank dies). */
export const OPERATIONS = [
  "starting", "forward", "backward", "optimizer", "barrier", "all-reduce", "all-gather", "reduce-scatter",
  "all-to-all", "send", "recv", "done", "speed probe",
] as const;
export type Operation = (typeof OPERATIONS)[number];

/** Longest single Atomics.wait: the abort latency. */
const SLICE_MS = 50;
/** Checks before sleeping: a collective's partner is often a few microseconds behind. */
const SPINS = 64;
/** Then keep checking for this long before sleeping: a futex wake-up costs tens of microseconds. */
const SPIN_MS = 0.05;
/** A collective that never completes ends the run after this long (design brief section 6; settable). */
export const DEFAULT_TIMEOUT_SECONDS = 60;

export type CommFailure = "timeout" | "aborted";

export class CommError extends Error {
  constructor(
    readonly rank: number,
    readonly operation: string,
    readonly failure: CommFailure,
    detail: string,
  ) {
    super(`rank ${rank}: ${operation} ${detail}`);
    this.name = "CommError";
  }
}

export class Waiter {
  /** Milliseconds spent blocked, since the last take(). */
  private idle = 0;

  constructor(
    private readonly control: Int32Array,
    readonly rank: number,
    readonly timeoutSeconds: number,
  ) {}

  /**
   * Returns once `ready()` holds, spinning briefly, then sleeping on the Int32 word `word`, which whoever
   * makes `ready()` true increments and notifies; the time from the first failed check counts as idle.
   * `operation` and `waitingFor` name what it was doing and whom it waited for, for the error.
   */
  until(word: number, ready: () => boolean, operation: () => string, waitingFor: () => string): void {
    if (ready()) return;
    const start = performance.now();
    const spinUntil = start + SPIN_MS;
    for (let i = 0; i < SPINS || performance.now() < spinUntil; i++) {
      if (ready()) {
        this.idle += performance.now() - start;
        return;
      }
    }
    const deadline = start + this.timeoutSeconds * 1000;
    for (;;) {
      const seen = Atomics.load(this.control, word);
      if (ready()) break;
      if (Atomics.load(this.control, CONTROL.abort) !== 0) {
        throw new CommError(this.rank, operation(), "aborted", "was aborted because another rank failed");
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new CommError(this.rank, operation(), "timeout", `timed out after ${this.timeoutSeconds} s ${waitingFor()}`);
      }
      Atomics.wait(this.control, word, seen, Math.min(left, SLICE_MS));
    }
    this.idle += performance.now() - start;
  }

  /** Idle milliseconds since the previous call. */
  takeIdleMs(): number {
    const t = this.idle;
    this.idle = 0;
    return t;
  }
}

/** Increments a word and wakes everyone sleeping on it. */
export function bump(control: Int32Array, word: number): void {
  Atomics.add(control, word, 1);
  Atomics.notify(control, word);
}

/** A rank's status words: what it is doing now, for the coordinator's error message if it dies. */
export class Status {
  private readonly base: number;
  constructor(private readonly control: Int32Array, rank: number) {
    this.base = CONTROL.statusBase + rank * STATUS_WORDS;
  }
  set(operation: Operation, target: number, step?: number): void {
    Atomics.store(this.control, this.base + STATUS.op, OPERATIONS.indexOf(operation));
    Atomics.store(this.control, this.base + STATUS.target, target);
    if (step !== undefined) Atomics.store(this.control, this.base + STATUS.step, step);
  }
  get doorbellWord(): number {
    return this.base + STATUS.doorbell;
  }
}

export interface StatusReading {
  readonly operation: Operation;
  readonly target: number;
  readonly step: number;
}

export function readStatus(control: Int32Array, rank: number): StatusReading {
  const base = CONTROL.statusBase + rank * STATUS_WORDS;
  return {
    operation: OPERATIONS[Atomics.load(control, base + STATUS.op)] ?? "starting",
    target: Atomics.load(control, base + STATUS.target),
    step: Atomics.load(control, base + STATUS.step),
  };
}
