import { profileOf } from "./profiles.js";
import { quickScore } from "../planner/cost/estimate.js";
import { searchPlans } from "../planner/search/search.js";
import { FRAMEWORK_SWITCHES, FRAMEWORK_VALUES, type PlanInput } from "../spec/plan.js";
import type { Plan } from "../spec/types.js";
import { calibratedClusters, IDENTITY, type CalibrationFile } from "./calibration.js";
import type { PreparedCase, PreparedRecords } from "./predict.js";
import { groupBy } from "./stats.js";

/**
 * The planner on the published settings (issue 7): for each setting some source ran (the same model,
 * cluster, GPUs, global batch, sequence and precision, under the same software: the framework's attention
 * kernel and flash attention, tensor-parallel overlap and DeepSpeed's pipeline engine where the source
 * had them), the best plan `meshplan plan` finds on the calibrated cluster against the fastest published
 * configuration of that setting, both predicted by the same analytic model. The planner should never be
 * slower: every published configuration is one of the plans it could have chosen, unless the search space
 * lacks it (an interleaved split the search does not try, a layer split it would not make), which the
 * report names.
 */
export interface PlannerRow {
  readonly source: string;
  readonly model: string;
  readonly cluster: string;
  readonly gpus: number;
  readonly globalBatch: number;
  readonly seqLen: number;
  readonly precision: string;
  /** The published configurations of this setting (record ids), and the fastest of them as predicted. */
  readonly records: readonly string[];
  readonly published: { readonly id: string; readonly plan: string; readonly tokensPerSecondPerGpu: number; readonly fits: boolean };
  /** The planner's best plan, or null when the search found none that fits. */
  readonly best: { readonly plan: string; readonly tokensPerSecondPerGpu: number } | null;
  /** best / published - 1 (null without a best plan). */
  readonly gain: number | null;
}

export interface PlannerReport {
  readonly settings: number;
  /** Settings where the best plan is predicted at least as fast as every published configuration. */
  readonly atLeastAsFast: number;
  /** Settings whose fastest published configuration is predicted not to fit (the planner cannot choose it). */
  readonly publishedDoesNotFit: number;
  readonly rows: readonly PlannerRow[];
}

/** Each framework switch's short name in a plan's text, in the order printed; typed over FRAMEWORK_SWITCHES so none goes unshown. */
const SWITCH_NAMES: Readonly<Record<(typeof FRAMEWORK_SWITCHES)[number], string>> = {
  tpCommOverlap: "tp-overlap", ppBlockingSends: "blocking-sends", dpCommExposed: "dp-exposed", dpCommBlocking: "dp-blocking", tpSyncBackward: "tp-sync",
  ppScatterGather: "scatter-gather", launchBlocking: "launch-blocking", recomputeEarlyStop: "early-stop", ppKeepOutputs: "keep-outputs",
  keep16BitGrads: "keep-16bit-grads", fusedCrossEntropy: "fused-ce", fp8Keep16BitInputs: "fp8-16bit-inputs", fp32ShardOnly: "fp32-shard",
};

export function planText(x: Plan): string {
  const v = x.virtualStages > 1 ? ` v${x.virtualStages}` : "";
  const full = x.recomputeLayersPerStage.reduce((a, b) => a + b, 0);
  const rc = x.recompute === "full" ? "full" : full > 0 ? `${full} layers full` : x.recompute;
  const switches = Object.entries(SWITCH_NAMES).filter(([k]) => x[k as keyof typeof SWITCH_NAMES] === true).map(([, name]) => ` ${name}`);
  const knobs = [x.sequenceParallel ? " sp" : "", ...switches, x.optimizerStateBytes !== undefined ? ` optimizer-${x.optimizerStateBytes}B` : "",
    x.optimizerStepBytesPerParam !== undefined ? ` optimizer-step-${x.optimizerStepBytesPerParam}B` : "",
    x.gradientAccumulationBytesPerParam !== undefined ? ` grad-accum-${+x.gradientAccumulationBytesPerParam.toFixed(2)}B` : "",
    x.runtimeReserveBytes !== undefined ? ` reserve-${(x.runtimeReserveBytes / 1e9).toFixed(2)}GB` : "",
    x.allocatorCacheShare !== undefined ? ` cache-${+(100 * x.allocatorCacheShare).toFixed(1)}%` : ""].join("");
  return `tp${x.tp} pp${x.pp}${v} dp${x.dp}${x.cp > 1 ? ` cp${x.cp}` : ""} mb${x.microBatch} ${x.schedule} z${x.zero} ${rc}${knobs}`;
}

function settingKey(p: PreparedCase): string {
  const x = p.plan;
  return [p.case.source, p.case.model.name, p.case.model.layers, p.case.model.hiddenSize, p.case.cluster, p.case.gpus, x.globalBatch, x.seqLen, x.precision,
    x.flashAttention, p.case.attentionKernel ?? "", ...Object.entries(frameworkPins(p))].join("|");
}

/** What the search keeps fixed: the setting and the software, not the split. */
function pinnedFor(p: PreparedCase): PlanInput {
  const x = p.plan;
  return {
    globalBatch: x.globalBatch, seqLen: x.seqLen, precision: x.precision, flashAttention: x.flashAttention, fp32Gradients: x.fp32Gradients,
    ...frameworkPins(p),
  };
}

/**
 * The framework knobs of the published run (spec/plan.ts FRAMEWORK_SWITCHES and FRAMEWORK_VALUES), those it
 * has on: the software's properties, which every candidate split keeps. tpSyncBackward and ppScatterGather
 * come from the source's profile, so that a tp-1 or pp-1 published plan still pins them for candidates with
 * tp > 1 or pp > 1.
 */
function frameworkPins(p: PreparedCase): PlanInput {
  const x = p.plan;
  const pins: Record<string, boolean | number> = {};
  for (const k of FRAMEWORK_SWITCHES) {
    const on = k === "tpSyncBackward" ? syncBackward(p) : k === "ppScatterGather" ? scatterGather(p) : x[k] === true;
    if (on) pins[k] = true;
  }
  for (const k of FRAMEWORK_VALUES) {
    const v = x[k];
    if (v !== undefined) pins[k] = v;
  }
  return pins as PlanInput;
}

function syncBackward(p: PreparedCase): boolean {
  return profileOf(p.case.source)?.tpSyncBackward === true;
}

function scatterGather(p: PreparedCase): boolean {
  return profileOf(p.case.source)?.ppScatterGather === true;
}

export function plannerReport(records: PreparedRecords, calibration: CalibrationFile | undefined, onProgress?: (done: number, total: number) => void): PlannerReport {
  const measured = records.prepared.filter((p) => p.case.ran && p.case.measurement !== undefined);
  const calibrated = calibratedClusters(calibration?.scales ?? IDENTITY);
  const groups = [...groupBy(measured, settingKey).values()];
  const rows: PlannerRow[] = [];
  groups.forEach((group, i) => {
    onProgress?.(i, groups.length);
    const first = group[0]!;
    const shape = { ...first.shape, spec: calibrated(first.shape.spec) };
    const published = group
      .map((p) => {
        const score = quickScore(p.case.model, shape, p.plan);
        return { p, tokensPerSecondPerGpu: score.tokensPerSecond / p.case.gpus, fits: score.fits };
      })
      .reduce((a, b) => (b.tokensPerSecondPerGpu > a.tokensPerSecondPerGpu ? b : a));
    const result = searchPlans(first.case.model, shape, pinnedFor(first), { top: 1 });
    const top = result.plans[0];
    const best = top === undefined ? null : { plan: planText(top.plan), tokensPerSecondPerGpu: top.throughput.tokensPerSecond / first.case.gpus };
    rows.push({
      source: first.case.source, model: first.case.model.displayName, cluster: first.case.cluster, gpus: first.case.gpus,
      globalBatch: first.plan.globalBatch, seqLen: first.plan.seqLen, precision: first.plan.precision,
      records: group.map((p) => p.case.id),
      published: { id: published.p.case.id, plan: planText(published.p.plan), tokensPerSecondPerGpu: published.tokensPerSecondPerGpu, fits: published.fits },
      best,
      gain: best === null ? null : best.tokensPerSecondPerGpu / published.tokensPerSecondPerGpu - 1,
    });
  });
  onProgress?.(groups.length, groups.length);
  // A part in a million: the search and the published plan may be the same plan computed twice.
  const atLeastAsFast = rows.filter((r) => r.gain !== null && r.gain >= -1e-6).length;
  return { settings: rows.length, atLeastAsFast, publishedDoesNotFit: rows.filter((r) => !r.published.fits).length, rows };
}
