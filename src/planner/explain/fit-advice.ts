import type { PlanInput } from "../../spec/plan.js";
import type { ClusterShape, GpuSpec, ModelSpec } from "../../spec/types.js";
import type { Estimate } from "../cost/types.js";
import { searchPlans } from "../search/search.js";

const GIB = 2 ** 30;

/**
 * When no plan fits: how far the closest plan overflows, and which change would make some plan fit,
 * each checked by searching again: more GPUs (2x, 4x, 8x), a shorter sequence (1/2, 1/4), a GPU with
 * more memory (from `largerGpus`, keeping the topology). Pure, and slow only on this failure path.
 */
export function fitAdvice(model: ModelSpec, shape: ClusterShape, pinned: PlanInput, closest: Estimate, largerGpus: readonly GpuSpec[]): string[] {
  const over = closest.memory.peakBytesPerGpu - closest.memory.capacityBytes;
  const servers = (pinned.parameterServers ?? 0) > 0;
  const searched = servers
    ? "with recompute already searched; parameter servers leave every worker the whole model's weights and gradients (no ZeRO, tensor or pipeline split)"
    : "with recompute and ZeRO already searched";
  const out = [`The closest plan needs ${(closest.memory.peakBytesPerGpu / GIB).toFixed(1)} GiB per GPU, ${(over / GIB).toFixed(1)} GiB more than the ${(closest.memory.capacityBytes / GIB).toFixed(1)} GiB there is, ${searched}.`];
  const fits = (s: ClusterShape, input: PlanInput) => {
    try {
      return searchPlans(model, s, input, { top: 1, shortlist: 1 }).plans[0];
    } catch {
      return undefined;
    }
  };
  if (servers) {
    const { parameterServers: _ps, asynchronous: _async, staleness: _staleness, ...collective } = pinned;
    const found = fits(shape, collective);
    if (found !== undefined) out.push(`Without parameter servers (leave out --ps): a plan fits (${describeShort(found)}).`);
  }
  for (const factor of [2, 4, 8]) {
    const bigger = { ...shape, gpus: shape.gpus * factor };
    const { dp: _pinnedDp, ...unpinned } = pinned; // dp follows the GPU count
    const found = fits(bigger, unpinned);
    if (found !== undefined) {
      out.push(`More GPUs: with ${bigger.gpus} GPUs a plan fits (${describeShort(found)}).`);
      break;
    }
    if (factor === 8) out.push(`More GPUs: even ${bigger.gpus} GPUs do not make a plan fit at this batch and sequence.`);
  }
  const seq = pinned.seqLen ?? closest.plan.seqLen;
  for (const div of [2, 4]) {
    if (seq % div !== 0) break;
    const found = fits(shape, { ...pinned, seqLen: seq / div });
    if (found !== undefined) {
      out.push(`A shorter sequence: at --seq ${seq / div} a plan fits (${describeShort(found)}).`);
      break;
    }
  }
  for (const gpu of [...largerGpus].sort((a, b) => a.memoryBytes - b.memoryBytes)) {
    if (gpu.memoryBytes <= shape.spec.gpu.memoryBytes) continue;
    const found = fits({ ...shape, spec: { ...shape.spec, gpu } }, pinned);
    if (found !== undefined) {
      out.push(`A larger GPU: on ${gpu.name} (${(gpu.memoryBytes / GIB).toFixed(0)} GiB, --gpu ${gpu.name}) a plan fits (${describeShort(found)}).`);
      break;
    }
  }
  return out;
}

function describeShort(e: Estimate): string {
  const p = e.plan;
  return `tp ${p.tp} x pp ${p.pp} x dp ${p.dp}${p.cp > 1 ? ` x cp ${p.cp}` : ""}, ${(e.memory.peakBytesPerGpu / GIB).toFixed(1)} GiB`;
}
