import type { ModelSpec, Plan } from "../../spec/types.js";
import { elements, INIT_STD, modelUnits, type TensorSpec } from "./layout.js";
import { hash32, mulberry32, normals, sequence, transitionTable } from "./random.js";

/** The full (unsplit) initial value of one parameter tensor: its stream is keyed by the seed and its name. */
export function initialTensor(spec: TensorSpec, seed: number): Float32Array {
  const n = elements(spec.shape);
  if (spec.init === "zeros") return new Float32Array(n);
  if (spec.init === "ones") return new Float32Array(n).fill(1);
  return normals(mulberry32(hash32(spec.name, seed)), n, INIT_STD);
}

/** Every parameter of the model, full, by name. */
export function initialParameters(model: ModelSpec, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const u of modelUnits(model)) for (const t of u.tensors) out.set(t.name, initialTensor(t, seed));
  return out;
}

/** Where one rank's micro-batch sits in the step's global batch and sequence. */
export interface TokenSlice {
  /** First sequence of the micro-batch in the global batch. */
  readonly firstSequence: number;
  readonly sequences: number;
  /** First position (context-parallel chunk) and how many. */
  readonly firstPosition: number;
  readonly positions: number;
}

/**
 * Data-parallel replica `dp` of `plan.dp` takes sequences [dp*B/dp, (dp+1)*B/dp) of the step's global
 * batch B, in micro-batches of `plan.microBatch`; context-parallel rank `cp` takes positions
 * [cp*s/cp, (cp+1)*s/cp) of each.
 */
export function tokenSlice(plan: Plan, dp: number, cp: number, microBatch: number): TokenSlice {
  const perReplica = plan.globalBatch / plan.dp;
  const positions = plan.seqLen / plan.cp;
  return {
    firstSequence: dp * perReplica + microBatch * plan.microBatch,
    sequences: plan.microBatch,
    firstPosition: cp * positions,
    positions,
  };
}

/**
 * The token source of one run: same seed, same tokens, however the plan splits them. The data set holds
 * `pool` sequences (by default one global batch) and step t reads sequences t*B .. t*B + B - 1 modulo the
 * pool: with one batch every step sees the same batch, the classic check that training fits it, so the
 * loss falls within a few steps.
 */
export class TokenSource {
  private readonly table: Int32Array;
  constructor(
    private readonly model: ModelSpec,
    private readonly seqLen: number,
    private readonly seed: number,
    private readonly batch: number,
    private readonly pool: number = batch,
  ) {
    this.table = transitionTable(seed, model.vocabSize);
  }

  /** Inputs and targets of a slice, position-major (row = position * sequences + sequence). */
  tokens(step: number, slice: TokenSlice): { ids: Int32Array; targets: Int32Array } {
    const b = slice.sequences;
    const ids = new Int32Array(slice.positions * b);
    const targets = new Int32Array(slice.positions * b);
    for (let j = 0; j < b; j++) {
      const index = (step * this.batch + slice.firstSequence + j) % this.pool;
      const seq = sequence(this.seed, this.table, this.model.vocabSize, 0, index, this.seqLen + 1);
      for (let i = 0; i < slice.positions; i++) {
        ids[i * b + j] = seq[slice.firstPosition + i]!;
        targets[i * b + j] = seq[slice.firstPosition + i + 1]!;
      }
    }
    return { ids, targets };
  }
}
