import { availableParallelism } from "node:os";
import type { ClusterShape, ModelSpec, Plan } from "../spec/types.js";
import { DEFAULT_TIMED_STEPS, DEFAULT_WARMUP_STEPS, execute, stepLabel, type Execution, type ExecuteOptions } from "./execute.js";
import { cpuSnapshot, otherWorkShare } from "./measure/machine.js";
import { predictForRun, runSpeedProbe, withPricedPasses, type DeviceProfile } from "./measure/profile.js";
import { buildReport, worstMemoryRank, type ExecuteReport } from "./measure/report.js";
import { agreeingSteps, CHECKED_STEPS, LOSS_TOLERANCE } from "./measure/numerics.js";
import type { MedianInterval } from "./measure/stats.js";
import { intervalText } from "./measure/table.js";

/** The executor's entry for other front ends (the explorer's `x`): run a plan here and compare. */
export interface PredictedVsMeasured {
  readonly title: string;
  readonly rows: readonly { readonly quantity: string; readonly predicted: string; readonly measured: string }[];
  readonly notes?: readonly string[];
}

const fmt = {
  seconds: (s: number) => (s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1e3).toFixed(1)} ms`),
  bytes: (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`),
  share: (x: number) => `${(100 * x).toFixed(1)}%`,
};

/** A row under a median measured over the timed steps: the interval that holds it (report.ts stepSecondsInterval). */
function intervalRow(quantity: string, i: MedianInterval | undefined, show: (x: number) => string): PredictedVsMeasured["rows"] {
  if (i === undefined) return [];
  const t = intervalText(i, show);
  return [{ quantity: `  ${quantity}: ${t.percent} interval`, predicted: "", measured: t.range }];
}

export interface ExecutePlanOptions {
  readonly onProgress: (fraction: number, label: string) => void;
  /**
   * The device profile to predict on and where it came from: the one `meshplan calibrate` saved, or the one
   * the explorer measured for its session (src/ui/run-job.ts, the one place `x` calibrates).
   */
  readonly saved: { readonly profile: DeviceProfile; readonly file: string };
  /** Now, for the saved profile's age (default: the clock). */
  readonly now?: () => Date;
}

/**
 * How often the explorer's progress bar is redrawn during a run. On a timer rather than at each step's end:
 * every rank runs the speed probe right after its step ends, and a redraw of the terminal there slowed the
 * probe alone (x1.60 in the explorer against x1.12 from the command line, the same plan a minute apart), so
 * the run's speed was misread; redraws at any moment cost the probe and the plan's steps alike.
 */
export const PROGRESS_EVERY_MS = 250;

/**
 * Progress passed on every `everyMs` milliseconds (the latest value, when it changed), not as it comes;
 * `stop` passes on what is left and ends the timer.
 */
export function onTimer(show: (fraction: number, label: string) => void, everyMs: number): { update(fraction: number, label: string): void; stop(): void } {
  let pending: [number, string] | undefined;
  const flush = () => {
    if (pending !== undefined) show(...pending);
    pending = undefined;
  };
  const timer = setInterval(flush, everyMs);
  return {
    update: (fraction, label) => {
      pending = [fraction, label];
    },
    stop: () => {
      clearInterval(timer);
      flush();
    },
  };
}

/**
 * Runs `o` with the profile's speed probe (where its ranks have a core each) and reports it against the
 * prediction at the run's speed, noting other processes' share of the cores during the run: what
 * `meshplan execute` and the explorer's `x` both do once they have a plan and a profile.
 */
export async function executeAndReport(given: Omit<ExecuteOptions, "speedProbe">, profile: DeviceProfile): Promise<{ ex: Execution; report: ExecuteReport }> {
  const cores = availableParallelism();
  const ranks = given.plan.dp * given.plan.tp * given.plan.pp * given.plan.cp;
  // ZB-V in the order found for this machine's passes, run and predicted alike (measure/profile.ts).
  const o = { ...given, plan: withPricedPasses(given.model, profile, ranks, given.plan) };
  const probe = runSpeedProbe(profile, ranks, cores);
  const before = cpuSnapshot();
  const ex = await execute({ ...o, ...(probe === undefined ? {} : { speedProbe: probe }) });
  return { ex, report: buildReport(ex, predictForRun(o.model, profile, ex), cores, otherWorkShare(before, cpuSnapshot())) };
}

/** "12 min ago", "3 h ago", "2 days ago": how old a profile measured at `iso` is. */
export function ageOf(iso: string, now: Date): string {
  const minutes = (now.getTime() - Date.parse(iso)) / 60_000;
  if (!Number.isFinite(minutes)) return "at an unknown time";
  if (minutes < 120) return `${Math.max(0, Math.round(minutes))} min ago`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h ago`;
  return `${Math.round(minutes / (24 * 60))} days ago`;
}

/**
 * Runs `plan` for a few steps on local ranks and its one-rank reference, and returns predicted against
 * measured, on the given device profile. The cluster shape of the caller is not used for the prediction:
 * the comparison is made on this machine's profile, as `meshplan execute` does.
 */
export async function executePlan(model: ModelSpec, _shape: ClusterShape, searched: Plan, options: ExecutePlanOptions): Promise<PredictedVsMeasured> {
  // ZB-V's order was found for the passes as the cluster's GPU prices them; here it is found again for
  // this machine's (executeAndReport), and the report says so where that changes it.
  const { vPassRatios: clusterPasses, ...unpriced } = searched;
  // The executor has no fused attention kernel (validateForExecutor refuses flash attention): a searched
  // plan runs, and is predicted, with the score matrix stored, and the report says so.
  const plan: Plan = { ...unpriced, flashAttention: false };
  const profile = options.saved.profile;
  const source = `predicted on the profile in ${options.saved.file}, measured ${ageOf(profile.measuredAt, (options.now ?? (() => new Date()))())} (meshplan calibrate measures it again)`;
  const ranks = plan.dp * plan.tp * plan.pp * plan.cp;
  let done = 0;
  const all = DEFAULT_WARMUP_STEPS + DEFAULT_TIMED_STEPS;
  const shown = onTimer(options.onProgress, PROGRESS_EVERY_MS);
  let run: { ex: Execution; report: ExecuteReport };
  try {
    run = await executeAndReport({
      model, plan, steps: DEFAULT_TIMED_STEPS, warmupSteps: DEFAULT_WARMUP_STEPS, backend: "wasm", reference: !plan.asynchronous,
      onProgress: (e) => {
        if (e.phase !== "step") return;
        done++;
        shown.update(Math.min(1, done / (ranks * all)), stepLabel(e.step, all, DEFAULT_WARMUP_STEPS));
      },
    }, profile);
  } finally {
    shown.stop();
  }
  const { ex, report: r } = run;
  const worst = worstMemoryRank(r);
  const rows = [
    { quantity: "step time", predicted: fmt.seconds(r.predicted.time.stepSeconds), measured: fmt.seconds(r.measured.stepSeconds) },
    ...intervalRow("step time", r.measured.stepSecondsInterval, fmt.seconds),
    { quantity: "bubble", predicted: fmt.share(r.predicted.pipeline.bubbleFraction), measured: fmt.share(r.measured.bubbleFraction) },
    ...intervalRow("bubble", r.measured.bubbleFractionInterval, fmt.share),
    // As `meshplan execute` compares it: float32, the executor's tensors counted by the tfjs accounting.
    { quantity: "peak memory, worst rank (float32)", predicted: fmt.bytes(worst.memory.predictedPeakBytes), measured: fmt.bytes(worst.memory.peakBytes) },
    ...Object.entries(r.bytes)
      .filter(([, b]) => b.predictedBytes + b.measuredBytes > 0)
      .map(([kind, b]) => ({ quantity: `${kind} bytes sent per step`, predicted: fmt.bytes(b.predictedBytes), measured: fmt.bytes(b.measuredBytes) })),
  ];
  if (r.numerics !== null) {
    rows.push({ quantity: "loss vs one rank (max rel.)", predicted: `<= ${LOSS_TOLERANCE}`, measured: r.numerics.maxRelativeError.toExponential(1) });
    // A mixture of experts is checked over its first steps (measure/numerics.ts): say how many agreed.
    if (model.moe !== undefined) {
      const agree = agreeingSteps(r.measured.losses, r.numerics.referenceLosses);
      rows.push({ quantity: "steps agreeing with one rank", predicted: `>= ${Math.min(CHECKED_STEPS, r.measured.losses.length)}`, measured: `${agree} of ${r.measured.losses.length}` });
    }
  }
  const ran = ex.plan.vPassRatios;
  const reordered = clusterPasses !== undefined && ran !== undefined && (ran.backward !== clusterPasses.backward || ran.weight !== clusterPasses.weight)
    ? [`ZB-V ran in the order found for this machine's passes (B ${ran.backward}, W ${ran.weight} forwards), not the cluster's (B ${clusterPasses.backward}, W ${clusterPasses.weight})`] : [];
  const notes = [...(searched.flashAttention ? ["ran with flash attention off: the executor has no fused attention kernel"] : []), ...reordered, source, ...r.notes];
  return { title: `${model.name}: ${ranks} ranks, ${DEFAULT_TIMED_STEPS} timed steps after ${DEFAULT_WARMUP_STEPS} warm-up on ${ex.backend}`, rows, notes };
}
