import type { ClusterShape, ModelSpec, Plan } from "../../spec/types.js";
import { resolveLinks } from "../cost/communication.js";
import { ALIGNED_16BIT_ELEMENTS, TENSOR_CORE_ALIGNMENT_BYTES } from "../../spec/alignment.js";
import { misalignedAttentionRate, peak16Flops } from "../cost/compute.js";
import { estimate } from "../cost/estimate.js";
import { causalSkippedShare } from "../cost/flops.js";
import { zeroShardRanks } from "../cost/memory.js";
import { parameterServerCost } from "../cost/parameter-server.js";
import { groupPlacement } from "../cost/placement.js";
import { memoryCosts } from "../cost/stages.js";
import type { Estimate } from "../cost/types.js";
import { counted, grouped } from "../../math/digits.js";

const GIB = 2 ** 30;
const gib = (b: number) => `${(b / GIB).toFixed(1)} GiB`;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

type Breakdown = Estimate["time"]["breakdown"];
/** The time pieces that are not compute, with the words a reader knows them by. */
const OVERHEADS: [keyof Breakdown, string][] = [
  ["bubbleSeconds", "the pipeline bubble"],
  ["tpCommSeconds", "exposed tensor-parallel communication"],
  ["dpCommSeconds", "exposed data-parallel traffic"],
  ["ppCommSeconds", "pipeline sends on the critical path"],
  ["cpCommSeconds", "exposed context-parallel ring traffic"],
  ["epCommSeconds", "expert-parallel all-to-alls"],
  ["optimizerSeconds", "the optimizer step"],
];

/**
 * How many plans the search went through and how many fit: "12,148 plans searched, 3,807 fit, 3,284
 * timed". The fits count every candidate (the search checks the memory of those a speed bound keeps from
 * being timed); "timed" is how many it timed.
 */
export function searchSummary(r: { readonly searched: number; readonly feasible: number; readonly bounded: number }): string {
  const n = grouped;
  const head = `${n(r.searched)} plans searched, ${n(r.feasible)} fit`;
  return r.bounded === 0 ? head : `${head}, ${n(r.searched - r.bounded)} timed`;
}

/**
 * Where the data-parallel traffic of a parameter-server plan goes (planner/cost/parameter-server.ts): each
 * worker pushes its gradients and pulls the weights through its own network link, each server carries
 * dp / K workers' share through its one link; synchronous workers wait for the exchange, asynchronous ones
 * overlap it with their next step up to the staleness bound.
 */
function serversLine(model: ModelSpec, shape: ClusterShape, win: Estimate): string {
  const p = win.plan;
  const ps = parameterServerCost(p, shape, memoryCosts(model, shape, p).stages[0]!.params);
  const share = pct(win.time.breakdown.dpCommSeconds / win.time.stepSeconds);
  const busy = ps.serverSeconds >= ps.seconds ? "the servers' links are the bottleneck" : "the workers' links are the bottleneck";
  const mode = p.asynchronous
    ? `asynchronous (staleness ${p.staleness}): a worker computes on weights up to ${counted(p.staleness, "step")} old while its exchange runs, so its step is the slower of the two; ${share} of the step waits on the exchange`
    : `synchronous: every step waits for its exchange, ${share} of the step`;
  return `Workers push gradients to ${counted(p.parameterServers, "parameter server")} and pull the weights back over ${shape.spec.interNode.link}, ` +
    `${ps.seconds.toFixed(2)} s per step (${busy}, each server serving ${p.dp / p.parameterServers} workers); ${mode}.`;
}

export function describePlan(p: Plan): string {
  const parts = [`tp ${p.tp}`, `pp ${p.pp}`, `dp ${p.dp}`];
  if (p.cp > 1) parts.push(`cp ${p.cp}`);
  if (p.ep > 1) parts.push(`ep ${p.ep}`);
  const sched = p.pp > 1 ? `, ${p.schedule === "interleaved" ? `interleaved (v ${p.virtualStages})` : p.schedule}` : "";
  return `${parts.join(" x ")}, micro-batch ${p.microBatch}${sched}, ZeRO ${zeroLabel(p)}, recompute ${recomputeLabel(p)}${serversWords(p)}`;
}

/** A plan's parameter servers in words after the rest of it (", 2 parameter servers async (staleness 1)"); "" without. */
export function serversWords(p: Pick<Plan, "parameterServers" | "asynchronous" | "staleness">): string {
  if (p.parameterServers === 0) return "";
  return `, ${counted(p.parameterServers, "parameter server")} ${p.asynchronous ? `async (staleness ${p.staleness})` : "sync"}`;
}

/** Parameter servers in a table cell or the explorer's context line: "4 sync", "4 async/2" (the staleness bound). */
export function serversLabel(servers: number, asynchronous: boolean, staleness: number): string {
  return `${servers} ${asynchronous ? `async/${staleness}` : "sync"}`;
}

/**
 * Layers per stage, runs of three or more equal counts written n x k ("7,8x14,7"), so that a plan the
 * integer program laid out unevenly can be replayed (`simulate --layers-per-stage`); "-" without a pipeline.
 */
export function layersLabel(p: Plan): string {
  if (p.pp === 1) return "-";
  const parts: string[] = [];
  const l = p.layersPerStage;
  for (let i = 0; i < l.length; ) {
    let j = i;
    while (j < l.length && l[j] === l[i]) j++;
    const run = j - i;
    parts.push(run >= 3 ? `${l[i]}x${run}` : Array(run).fill(String(l[i])).join(","));
    i = j;
  }
  return parts.join(",");
}

/** The ZeRO stage, with the shard groups under hybrid sharding: "3", or "3 hybrid (8-way shards, 8 replicas)". */
export function zeroLabel(p: Plan, short = false): string {
  if (p.shardGroup === undefined) return String(p.zero);
  return short ? `${p.zero} hsdp${p.shardGroup}` : `${p.zero} hybrid (${p.shardGroup}-way shards, ${(p.dp * p.cp) / p.shardGroup} replicas)`;
}

export function recomputeLabel(p: Plan): string {
  const full = p.recomputeLayersPerStage.reduce((a, b) => a + b, 0);
  const total = p.layersPerStage.reduce((a, b) => a + b, 0);
  if (full === 0) return p.recompute;
  if (full === total) return "full";
  return `${p.recompute} + ${full} full`;
}

/**
 * A sentence when MFU counts attention FLOPs that the causal mask skips, 10% or more of the count (long
 * sequences): the share, and the utilisation over the FLOPs that run.
 */
export function causalNote(model: ModelSpec, e: Estimate): string | undefined {
  const share = causalSkippedShare(model, e.plan);
  if (share < 0.1) return undefined;
  const s = e.plan.seqLen;
  return `MFU counts attention over the full ${s} x ${s} square (Narayanan et al. 2021, as Megatron-LM logs it); the causal mask skips half of it, ` +
    `${pct(share)} of the counted FLOPs: over the FLOPs that run, MFU is ${pct(e.throughput.mfu * (1 - share))}.`;
}

/** Plain sentences on why the winner wins, what limits it, and what the runner-up loses. Pure. */
export function explainRanking(model: ModelSpec, shape: ClusterShape, plans: readonly Estimate[]): string[] {
  const win = plans[0];
  if (win === undefined) return [];
  const p = win.plan;
  const out: string[] = [];
  out.push(`Best: ${describePlan(p)}: ${grouped(win.throughput.tokensPerSecond)} tokens/s, MFU ${pct(win.throughput.mfu)}.`);
  const causal = causalNote(model, win);
  if (causal !== undefined) out.push(causal);

  const links = resolveLinks(p, shape);
  if (p.tp > 1) {
    const place = groupPlacement("tp", p, shape.gpusPerNode);
    out.push(place.nodes === 1
      ? `Tensor parallel (tp ${p.tp}) stays inside a node, on ${links.tp.name} (${(links.tp.bytesPerSecond / 1e9).toFixed(0)} GB/s per GPU achieved).`
      : `Tensor parallel (tp ${p.tp}) spans ${place.nodes} nodes over ${links.tp.name}; its traffic is ${pct(win.time.breakdown.tpCommSeconds / win.time.stepSeconds)} of the step.`);
  } else if (p.cp === 1 && p.ep === 1) {
    out.push("No tensor parallel: every GPU holds whole layers, so no activation traffic per layer.");
  } else {
    const b = win.time.breakdown;
    const traffic = [
      ...(p.cp > 1 ? [`context parallel's ring over ${p.cp} GPUs (${pct(b.cpCommSeconds / win.time.stepSeconds)} of the step exposed)`] : []),
      ...(p.ep > 1 ? [`expert parallel's all-to-alls over ${p.ep} GPUs (${pct(b.epCommSeconds / win.time.stepSeconds)} exposed)`] : []),
    ];
    const experts = model.moe !== undefined && p.ep > 1 ? `, and ${model.moe.experts / p.ep} of the ${model.moe.experts} experts of each MoE layer` : "";
    out.push(`No tensor parallel: every GPU holds the attention and dense weights of its layers whole${experts}; the traffic per layer is ${traffic.join(" and ")}.`);
  }
  if (p.pp > 1) {
    // ZB-V's order depends on the pass lengths it was found for: say which.
    const order = p.vPassRatios === undefined ? "" : ` (its order found for B = ${p.vPassRatios.backward} and W = ${p.vPassRatios.weight} chunk forwards)`;
    out.push(`${p.pp} pipeline stages, ${p.schedule}${order} over ${counted(win.pipeline.microBatches, "micro-batch", "micro-batches")}: bubble ${pct(win.pipeline.bubbleFraction)} of the pipelined time; layers per stage ${p.layersPerStage.join("/")}.`);
  }
  const dpWays = p.dp * p.cp;
  if (p.parameterServers > 0) {
    out.push(serversLine(model, shape, win));
  } else if (dpWays > 1) {
    const exposed = `${pct(win.time.breakdown.dpCommSeconds / win.time.stepSeconds)} of the step is exposed data-parallel traffic.`;
    const group = zeroShardRanks(p);
    // Where ep spans every data-parallel rank, each holds its own experts: nothing reduces their gradients.
    const expertWays = model.moe === undefined || p.ep <= 1 ? "" : dpWays === p.ep ? " (the experts' not at all: each GPU holds its own)" : ` (the experts' ${dpWays / p.ep} ways)`;
    out.push(links.dpReplica === undefined
      ? `Gradients are reduced ${dpWays} ways${expertWays} over ${links.dp.name}; ${exposed}`
      : `Gradients are reduce-scattered ${group} ways over ${links.dp.name} and all-reduced ${dpWays / group} ways across the replicas over ${links.dpReplica.name}; ${exposed}`);
  }
  if (p.zero > 0 && dpWays > 1) {
    const plain = estimate(model, shape, { ...p, zero: 0 });
    out.push(`ZeRO-${p.zero} saves ${gib(plain.memory.peakBytesPerGpu - win.memory.peakBytesPerGpu)} per GPU against no sharding.`);
  }
  const full = p.recomputeLayersPerStage.reduce((a, b) => a + b, 0);
  if (full > 0) {
    out.push(`It recomputes ${full} of ${model.layers} layers in full (per stage ${p.recomputeLayersPerStage.join("/")}) to fit in memory; ` +
      `HFU ${pct(win.throughput.hfu)} against MFU ${pct(win.throughput.mfu)}.`);
  }
  const misaligned = misalignedAttentionRate(shape.spec.gpu, p, model.headDim);
  if (misaligned !== undefined) {
    const gpu = shape.spec.gpu;
    const rate = misaligned.from === "fp32"
      ? `run on the CUDA cores at ${(gpu.peakFlopsPerSecond.fp32! / 1e12).toFixed(1)} TFLOP/s (fp32)`
      : `run at ${(misaligned.flopsPerSecond / 1e12).toFixed(0)} TFLOP/s (as measured on this GPU at head dimension ${misaligned.headDim})`;
    out.push(`Head dimension ${model.headDim} is not a multiple of ${ALIGNED_16BIT_ELEMENTS}: the unfused attention's products miss the tensor cores' ` +
      `${TENSOR_CORE_ALIGNMENT_BYTES}-byte alignment and ${rate} instead of the tensor cores' ` +
      `${(peak16Flops(gpu, p) / 1e12).toFixed(0)}; flash attention, or a head count that makes hidden / heads a multiple of ${ALIGNED_16BIT_ELEMENTS}, avoids it.`);
  }
  const m = win.memory;
  out.push(`Peak memory ${gib(m.peakBytesPerGpu)} of ${gib(m.capacityBytes)} on stage ${m.worstStage} (${gib(m.capacityBytes - m.peakBytesPerGpu)} free).`);

  const [name, share] = largestOverhead(win);
  out.push(share < 0.02
    ? `What limits it: compute itself (${pct(win.time.breakdown.computeSeconds / win.time.stepSeconds)} of the step).`
    : `What limits it: ${name}, ${pct(share)} of the step.`);

  const next = plans[1];
  if (next !== undefined) out.push(compareNext(win, next));
  return out;
}

function largestOverhead(e: Estimate): [string, number] {
  let best: [string, number] = ["nothing", 0];
  for (const [key, words] of OVERHEADS) {
    const share = e.time.breakdown[key] / e.time.stepSeconds;
    if (share > best[1]) best = [words, share];
  }
  // Recomputation is inside compute: the part of it beyond the model's FLOPs (1 - MFU/HFU of the compute).
  const hfu = e.throughput.hfu;
  const recompute = hfu > 0 ? (e.time.breakdown.computeSeconds / e.time.stepSeconds) * (1 - e.throughput.mfu / hfu) : 0;
  if (recompute > best[1]) best = ["recomputation, paid to fit in memory", recompute];
  return best;
}

/** The runner-up's loss, and the time piece that grew most. */
function compareNext(win: Estimate, next: Estimate): string {
  // slower as time per token: 1.96x the best plan's time reads 96% slower (not the 49% of throughput it loses)
  const loss = win.throughput.tokensPerSecond / next.throughput.tokensPerSecond - 1;
  // per token, so that plans of one batch compare piece by piece
  const perToken = (e: Estimate, k: keyof Breakdown) => e.time.breakdown[k] / (e.plan.globalBatch * e.plan.seqLen);
  let worst: [string, number] = ["compute", perToken(next, "computeSeconds") - perToken(win, "computeSeconds")];
  for (const [key, words] of OVERHEADS) {
    const grew = perToken(next, key) - perToken(win, key);
    if (grew > worst[1]) worst = [words, grew];
  }
  const share = worst[1] * next.plan.globalBatch * next.plan.seqLen / next.time.stepSeconds;
  const which = nextPlanWords(win.plan, next.plan);
  if (loss < 0.0005) {
    const less = win.memory.peakBytesPerGpu - next.memory.peakBytesPerGpu;
    const memory = `${gib(next.memory.peakBytesPerGpu)} per GPU against ${gib(win.memory.peakBytesPerGpu)}`;
    const slower = `${(100 * Math.max(0, loss)).toFixed(2)}% slower`;
    if (less >= 2 ** 30) return `The next plan ${which} is as fast (${slower}) and needs ${gib(less)} less memory (${memory}): the one to take for headroom.`;
    if (less > 0) return `The next plan ${which} is as fast (${slower}) and needs ${gib(less)} less memory (${memory}).`;
    return `The next plan ${which} is as fast (${slower}) and needs as much memory or more (${memory}).`;
  }
  return `The next plan ${which} is ${pct(loss)} slower: it loses most to ${worst[0]}, ${pct(share)} of its step more than the best plan's.`;
}

/**
 * The runner-up in words: its description, or, when that reads the same as the winner's (another
 * layout of the layers, or of the recomputed layers, found by the integer program), what differs.
 */
function nextPlanWords(win: Plan, next: Plan): string {
  const described = describePlan(next);
  if (described !== describePlan(win)) return `(${described})`;
  const lists = (a: readonly number[], b: readonly number[]) => a.length !== b.length || a.some((x, i) => x !== b[i]);
  if (lists(win.layersPerStage, next.layersPerStage)) {
    return `(the same split with layers per stage ${next.layersPerStage.join("/")} where the best has ${win.layersPerStage.join("/")})`;
  }
  if (lists(win.recomputeLayersPerStage, next.recomputeLayersPerStage)) {
    return `(the same split recomputing ${next.recomputeLayersPerStage.join("/")} layers per stage where the best recomputes ${win.recomputeLayersPerStage.join("/")})`;
  }
  return `(${described}, with other settings)`;
}
