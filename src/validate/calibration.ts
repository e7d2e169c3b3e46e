import { FLASH_BACKWARD_RATIO } from "../planner/cost/compute.js";
import type { ClusterSpec, GpuSpec, LinkSpec } from "../spec/types.js";
import { attentionSlowdown, type AttentionKernelName } from "./profiles.js";

/**
 * The calibration layer: a few scale factors, fitted on published runs (src/validate/fit.ts, run by the
 * calibration script) and recorded in models/hardware/calibration.json, that multiply the sourced priors
 * of models/hardware/** (never overwrite them). A calibrated cluster is the prior cluster with each GPU
 * efficiency and link efficiency scaled; fractions are capped at 1. The identity scales give the priors back.
 */
export const SCALE_NAMES = ["matmul", "attention", "fp8Matmul", "matmulOverhead", "memoryBandwidth", "link", "overlap"] as const;
export type ScaleName = (typeof SCALE_NAMES)[number];

/**
 * - matmul: multiplies every GPU's efficiency.matmulMax (16-bit GEMMs);
 * - attention: multiplies efficiency.attentionMax;
 * - fp8Matmul: multiplies the calibrated matmulMax to give fp8MatmulMax (fp8 GEMMs);
 * - matmulOverhead: multiplies efficiency.matmulOverheadSeconds (the fixed cost per GEMM: small GEMMs slower;
 *   not used on a GPU with a measured GEMM grid, whose small products carry their own cost);
 * - memoryBandwidth: multiplies efficiency.memoryBandwidth (element-wise kernels);
 * - link: multiplies busBandwidthEfficiency of the intra- and inter-node links;
 * - overlap: multiplies efficiency.commOverlapSlowdown (compute slowed beside data-parallel collectives).
 * The factors are shared by every GPU: each GPU keeps its own sourced prior, scaled. (Factors per GPU
 * generation were tried and held out worse: the generations' sources are mostly different frameworks.)
 */
export type CalibrationScales = Readonly<Record<ScaleName, number>>;

export const IDENTITY: CalibrationScales = Object.fromEntries(SCALE_NAMES.map((k) => [k, 1])) as CalibrationScales;

const cap = (x: number) => Math.min(1, x);

export function calibratedGpu(gpu: GpuSpec, s: CalibrationScales): GpuSpec {
  const e = gpu.efficiency;
  return {
    ...gpu,
    efficiency: {
      matmulMax: cap(e.matmulMax * s.matmul),
      matmulOverheadSeconds: e.matmulOverheadSeconds * s.matmulOverhead,
      attentionMax: cap(e.attentionMax * s.attention),
      memoryBandwidth: cap(e.memoryBandwidth * s.memoryBandwidth),
      fp8MatmulMax: cap((e.fp8MatmulMax ?? e.matmulMax) * s.matmul * s.fp8Matmul),
      ...(e.commOverlapSlowdown === undefined ? {} : { commOverlapSlowdown: cap(e.commOverlapSlowdown * s.overlap) }),
    },
  };
}

function calibratedLink(link: LinkSpec, s: CalibrationScales): LinkSpec {
  return { ...link, busBandwidthEfficiency: cap(link.busBandwidthEfficiency * s.link) };
}

/** The prior cluster with the calibration layer applied. Pure. */
export function calibratedCluster(spec: ClusterSpec, s: CalibrationScales): ClusterSpec {
  return { ...spec, gpu: calibratedGpu(spec.gpu, s), intraNode: calibratedLink(spec.intraNode, s), interNode: calibratedLink(spec.interNode, s) };
}

/** calibratedCluster, once per cluster object (the cases of a report share a few clusters). */
export function calibratedClusters(s: CalibrationScales): (spec: ClusterSpec) => ClusterSpec {
  const done = new Map<ClusterSpec, ClusterSpec>();
  return (spec) => {
    let out = done.get(spec);
    if (out === undefined) done.set(spec, (out = calibratedCluster(spec, s)));
    return out;
  };
}

/**
 * The cluster as a framework's attention kernel runs it: the fused-attention efficiency divided by the
 * kernel's slowdown against the GPU's prior kernel over a forward and its backward (FLASH_BACKWARD_RATIO
 * times the forward's time), so that a micro-batch's attention takes as long as the kernel's two passes.
 * Unchanged where no ratio is published for that GPU.
 */
export function withAttentionKernel(spec: ClusterSpec, kernel: AttentionKernelName | undefined): ClusterSpec {
  const k = kernel === undefined ? undefined : attentionSlowdown(kernel, spec.gpu.name);
  if (k === undefined) return spec;
  const r = FLASH_BACKWARD_RATIO;
  const slowdown = (k.forward + r * k.backward) / (1 + r);
  const e = spec.gpu.efficiency;
  return { ...spec, gpu: { ...spec.gpu, efficiency: { ...e, attentionMax: e.attentionMax / slowdown } } };
}

/** One held-out fold: the scales fitted on every source but `source`. */
export interface Fold {
  readonly heldOut: string;
  readonly scales: CalibrationScales;
  readonly trainedOn: readonly string[];
}

/** models/hardware/calibration.json, as the calibration script writes it. */
export interface CalibrationFile {
  readonly fittedAt: string;
  readonly method: string;
  /** The scales fitted on every compared record of every source: the layer `meshplan validate` applies. */
  readonly scales: CalibrationScales;
  readonly records: readonly string[];
  readonly sources: readonly string[];
  readonly folds: readonly Fold[];
  readonly errors?: unknown;
  readonly calibratedGpus?: unknown;
}

/** Scales added after calibration files were first written: absent from an older file, they stay 1. */
const LATER_SCALES: readonly ScaleName[] = ["overlap"];

function readScales(v: unknown, where: string): CalibrationScales {
  if (typeof v !== "object" || v === null) throw new Error(`${where}: not an object`);
  const o = v as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const k of SCALE_NAMES) {
    // A file written before a later scale existed leaves that prior unscaled.
    const x = o[k] === undefined && LATER_SCALES.includes(k) ? 1 : o[k];
    if (typeof x !== "number" || !Number.isFinite(x) || x <= 0) throw new Error(`${where}.${k} = ${String(x)} is not valid; valid: a number > 0`);
    out[k] = x;
  }
  return out as CalibrationScales;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** Validates a parsed calibration.json; throws an Error naming the field. */
export function parseCalibration(json: unknown, file = "calibration.json"): CalibrationFile {
  if (typeof json !== "object" || json === null) throw new Error(`${file}: not a JSON object`);
  const o = json as Record<string, unknown>;
  const folds = Array.isArray(o.folds) ? o.folds : [];
  return {
    fittedAt: typeof o.fittedAt === "string" ? o.fittedAt : "",
    method: typeof o.method === "string" ? o.method : "",
    scales: readScales(o.scales, `${file}: scales`),
    records: strings(o.records),
    sources: strings(o.sources),
    folds: folds.map((f, i) => {
      const fo = (f ?? {}) as Record<string, unknown>;
      if (typeof fo.heldOut !== "string") throw new Error(`${file}: folds[${i}].heldOut is not a string`);
      return { heldOut: fo.heldOut, scales: readScales(fo.scales, `${file}: folds[${i}].scales`), trainedOn: strings(fo.trainedOn) };
    }),
    errors: o.errors,
    calibratedGpus: o.calibratedGpus,
  };
}
