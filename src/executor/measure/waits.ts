import type { ModelSpec, Plan } from "../../spec/types.js";
import { resolvePlan } from "../../spec/plan.js";
import type { SyncGroup } from "../../simulator/simulate.js";
import { DEFAULT_WARMUP_STEPS, execute, type Execution } from "../execute.js";
import type { BackendChoice } from "../run/backend.js";
import { passCalls } from "./accounting.js";
import { withFitExperts } from "./fit-plan.js";
import { profileCluster, type DeviceProfile } from "./profile.js";
import { timed } from "./report.js";
import { total } from "./stats.js";

/**
 * How long a rank waits at a tensor-, context- or expert-parallel collective for the other member while
 * every core runs a rank (DeviceProfile.syncWaits): the passes between two blocking collectives (0.1 to 1
 * ms in the executor's small models) vary, and a blocked rank takes time to wake, so each collective costs
 * its members more than its transfer. Measured with the executor's own collectives: calibrate runs tp2,
 * cp2 and dp2 x ep2 executions of its fit shapes (never the plan later checked against it), one pair of
 * ranks per two cores, and takes from each a point: the mean segment (a pass's own time cut at its collectives, accounting.ts
 * passCalls) and the mean time a rank was blocked at one of those collectives (the fabric's idle time,
 * counted in the passes alone, StepRecord.passComm), over every rank's timed steps.
 *
 * It replaced a probe of matrix-multiply chains meeting at barriers, whose mean waits (heavy-tailed: a
 * median of 3 to 40 us, a mean of 0.08 to 0.27 ms, rare waits of several ms) came out 1.5 to 2.5 times the
 * waits the executor's tp2 passes had and moved by 2x between calibrations, which decided whether tp2
 * predictions came within 25% (src/executor/TIME-RECORD.md, "Waits at collectives").
 */
export interface SyncWaitPoint {
  readonly segmentSeconds: number;
  readonly waitSeconds: number;
  /** The collectives it was measured at (absent in older profiles: any). */
  readonly group?: SyncGroup;
}

/**
 * The fit shapes (calibrate.ts fitShapes, by index) and the axis each is split over to measure a point.
 * The expert-parallel runs split the shape's mixture-of-experts variant (waitRunModel).
 */
export const WAIT_RUNS: readonly { readonly shape: number; readonly axis: SyncGroup }[] = [
  // Segments of about 0.15 and 0.4 ms on this machine: tp2 of h64 s8 L2 and of h128 s32 L2.
  { shape: 1, axis: "tp" }, { shape: 2, axis: "tp" },
  // cp2 of h64 s8 L2 and of h64 s64 L4, whose segments lie either side of tiny-gpt cp2's; cp ranks wait
  // longer than tp ranks after the same segment, so each group gets its own line (profile.ts syncWaitAt).
  { shape: 1, axis: "cp" }, { shape: 3, axis: "cp" },
  // dp2 x ep2 of h64 s8 L2 and h128 s32 L2 with 4 experts, top 2, either side of tiny-moe's h64 s32 L2.
  { shape: 1, axis: "ep" }, { shape: 2, axis: "ep" },
];

/** Timed steps of each wait run (after the warm-up ones): 2300 to 5400 collectives per rank pair. */
const WAIT_STEPS = 12;
/** Micro-batches per replica, as the fit shapes' steps have. */
const WAIT_MICRO_BATCHES = 8;

/** The model a wait run executes: the fit shape, with experts for an expert-parallel run (fit-plan.ts FIT_EXPERTS, tiny-moe's). */
export function waitRunModel(model: ModelSpec, axis: SyncGroup): ModelSpec {
  return axis === "ep" ? withFitExperts(model) : model;
}

/**
 * The plan a wait run executes (on waitRunModel's model): the fit shape split in two over `axis`, as many
 * such pairs as whole pairs of cores (data-parallel replicas, so that every core runs a rank as in the runs
 * predicted), 8 micro-batches per replica, the executor's defaults otherwise (sequence parallel with tp, no
 * flash attention). An expert-parallel pair is two data-parallel replicas, whose experts it splits.
 */
export function waitRunPlan(model: ModelSpec, profile: DeviceProfile, axis: SyncGroup, cores: number): Plan {
  const pairs = Math.max(1, Math.floor(cores / 2));
  const shape = { spec: profileCluster(profile), gpus: 2 * pairs, gpusPerNode: 1024 };
  const dp = axis === "ep" ? 2 * pairs : pairs;
  return resolvePlan(model, shape, { dp, [axis]: 2, microBatch: 1, globalBatch: WAIT_MICRO_BATCHES * dp, flashAttention: false });
}

/**
 * An execution's wait point for collectives of `kind`: over every rank's timed steps (report.ts timed),
 * their passes' own seconds over their segments (a pass with n collectives is n + 1 segments, as the
 * simulator cuts it, simulate.ts passWaits), and the seconds blocked at those collectives over their
 * count. Throws where the passes made no such collective.
 */
export function waitPoint(ex: Execution, kind: SyncGroup): SyncWaitPoint {
  let passSeconds = 0;
  let segments = 0;
  let blockedSeconds = 0;
  let blockedCalls = 0;
  for (const r of ex.results) {
    const calls = passCalls(ex.model, ex.plan, r.coords.pp)[kind];
    for (const s of timed(r.steps, ex.warmupSteps)) {
      passSeconds += total(s.forwardPassSeconds) + total(s.backwardPassSeconds);
      segments += (calls.forward + 1) * s.forwardPassSeconds.length + (calls.backward + 1) * s.backwardPassSeconds.length;
      const traffic = s.passComm[kind];
      blockedSeconds += traffic.idleSeconds;
      blockedCalls += traffic.calls;
    }
  }
  if (blockedCalls === 0) throw new RangeError(`wait point: the execution's passes made no ${kind} collective`);
  return { segmentSeconds: passSeconds / segments, waitSeconds: blockedSeconds / blockedCalls, group: kind };
}

/**
 * The wait runs (WAIT_RUNS) on this machine, with `cores` cores: one point each, for collectives of two
 * members, and how many ranks ran at once (every core but one where their count is odd). `profile` gives
 * the cluster the plans are resolved on (its constants do not matter).
 */
export async function collectiveWaits(
  backend: BackendChoice, shapes: readonly { model: ModelSpec }[], profile: DeviceProfile, cores: number,
): Promise<{ members: number; ranks: number; points: SyncWaitPoint[] }> {
  const points: SyncWaitPoint[] = [];
  let ranks = 0;
  for (const run of WAIT_RUNS) {
    const model = waitRunModel(shapes[run.shape]!.model, run.axis);
    const plan = waitRunPlan(model, profile, run.axis, cores);
    const ex = await execute({ model, plan, steps: WAIT_STEPS, warmupSteps: DEFAULT_WARMUP_STEPS, backend, reference: false });
    points.push(waitPoint(ex, run.axis));
    ranks = ex.workers;
  }
  return { members: 2, ranks, points };
}
