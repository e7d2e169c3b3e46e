import type { ClusterShape, ClusterSpec, GpuSpec, LinkSpec, ModelSpec, Plan } from "../../spec/types.js";
import { estimate } from "../../planner/cost/estimate.js";
import { simulate } from "../../simulator/simulate.js";
import type { Estimate } from "../../planner/cost/types.js";

/**
 * A device profile: what `meshplan calibrate` measured on this machine for one executor rank, and the
 * cost model's constants fitted to it. As a cluster it is one "node" of ranks joined by shared memory.
 */
export interface DeviceProfile {
  readonly version: 1;
  readonly measuredAt: string;
  readonly machine: { readonly cpus: number; readonly cpuModel: string; readonly node: string; readonly platform: string };
  readonly backend: string;
  /** Square float32 matrix products n x n x n on one rank: median seconds each. */
  readonly matmul: readonly { readonly n: number; readonly seconds: number; readonly flopsPerSecond: number }[];
  /** Fastest measured matmul rate: the roofline's peak. */
  readonly peakFlopsPerSecond: number;
  /** Fitted: the fixed cost of one op (the cost model's matmulOverheadSeconds). */
  readonly opOverheadSeconds: number;
  /** Fitted: the rate of element-wise work in the cost model's 16-bit bytes (its hbm x memoryBandwidth). */
  readonly elementwiseBytesPerSecond: number;
  /** One thread's memory copy of 64 MiB (TypedArray.set). */
  readonly memcpyBytesPerSecond: number;
  /** Shared-memory all-reduce between two ranks, alpha-beta fit: bus bytes per second and latency per step. */
  readonly collectiveBytesPerSecond: number;
  readonly collectiveLatencySeconds: number;
  /** Single-rank training steps the constants were fitted to: measured and refitted seconds. */
  readonly fit: readonly { readonly shape: string; readonly measuredSeconds: number; readonly fittedSeconds: number }[];
}

const SOURCE = "measured by `meshplan calibrate` on this machine (src/executor/measure/calibrate.ts)";

export function profileGpu(p: DeviceProfile, opOverheadSeconds = p.opOverheadSeconds, elementwise = p.elementwiseBytesPerSecond): GpuSpec {
  const peak = p.peakFlopsPerSecond;
  return {
    name: `local-${p.backend}`,
    displayName: `${p.machine.cpuModel} core, TensorFlow.js ${p.backend}`,
    memoryBytes: 2 ** 40,
    hbmBytesPerSecond: elementwise,
    peakFlopsPerSecond: { fp32: peak, tf32: peak, bf16: peak, fp16: peak, fp8: peak },
    nvlinkBytesPerSecond: p.collectiveBytesPerSecond,
    efficiency: { matmulMax: 1, matmulOverheadSeconds: opOverheadSeconds, attentionMax: 1, memoryBandwidth: 1 },
    runtimeReserveBytes: 0,
    sources: { all: SOURCE },
  };
}

export function profileCluster(p: DeviceProfile, gpu: GpuSpec = profileGpu(p)): ClusterSpec {
  const link: LinkSpec = { link: "shared memory", bytesPerSecondPerGpu: p.collectiveBytesPerSecond, latencySeconds: p.collectiveLatencySeconds, busBandwidthEfficiency: 1 };
  return { name: "local", displayName: "this machine's executor ranks", gpu, gpusPerNode: 1024, intraNode: link, interNode: link, sources: { all: SOURCE } };
}

export function profileShape(p: DeviceProfile, ranks: number): ClusterShape {
  return { spec: profileCluster(p), gpus: ranks, gpusPerNode: 1024 };
}

/**
 * The prediction an execution is checked against: the event simulator's step (src/simulator/simulate.ts),
 * so the predicted step time and bubble come from the simulated timeline of the plan's schedule, with the
 * cost model's per-stage costs and memory. The executor has no fused attention, so the plan is predicted
 * with flashAttention off.
 */
export function predict(model: ModelSpec, shape: ClusterShape, plan: Plan): Estimate {
  return simulate(model, shape, { ...plan, flashAttention: false }).estimate;
}

/** The analytic estimate of the same plan (closed-form pipeline), for comparison with the simulator's. */
export function predictAnalytic(model: ModelSpec, shape: ClusterShape, plan: Plan): Estimate {
  return estimate(model, shape, { ...plan, flashAttention: false });
}
