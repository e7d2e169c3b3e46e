import type { ParsedArgs } from "./args.js";
import { builtinNames, loadCluster, loadGpu, loadModel } from "./catalog.js";
import { gib } from "./format.js";
import type { Io } from "./io.js";
import { totalParams } from "../planner/cost/params.js";

/** `meshplan models`: what is built in. */
export function modelsCommand(args: ParsedArgs, io: Io): number {
  const models = builtinNames("model").map((name) => {
    const m = loadModel(name);
    return { name, displayName: m.displayName, parameters: totalParams(m), layers: m.layers, hiddenSize: m.hiddenSize, seqLen: m.seqLen, experts: m.moe?.experts ?? 0 };
  });
  const gpus = builtinNames("gpu").map((name) => {
    const g = loadGpu(name);
    return { name, displayName: g.displayName, memoryBytes: g.memoryBytes, peakFlopsPerSecond: g.peakFlopsPerSecond };
  });
  const clusters = builtinNames("cluster").map((name) => {
    const c = loadCluster(name);
    return { name, displayName: c.displayName, gpu: c.gpu.name, gpusPerNode: c.gpusPerNode, intraNode: c.intraNode.link, interNode: c.interNode.link };
  });
  if (args.flags.json === true) {
    io.out(JSON.stringify({ models, gpus, clusters }, null, 2));
    return 0;
  }
  const lines = ["Models:"];
  for (const m of models) {
    const params = m.parameters >= 1e9 ? `${(m.parameters / 1e9).toFixed(2)}B` : `${(m.parameters / 1e6).toFixed(2)}M`;
    lines.push(`  ${m.name.padEnd(22)} ${params.padStart(9)} params  ${String(m.layers).padStart(3)} layers  hidden ${String(m.hiddenSize).padStart(5)}  seq ${m.seqLen}${m.experts > 0 ? `  ${m.experts} experts` : ""}`);
  }
  lines.push("", "GPUs:");
  for (const g of gpus) {
    const bf16 = g.peakFlopsPerSecond.bf16 ?? g.peakFlopsPerSecond.fp16 ?? 0;
    lines.push(`  ${g.name.padEnd(16)} ${gib(g.memoryBytes).padStart(10)}  ${(bf16 / 1e12).toFixed(0).padStart(5)} TFLOP/s 16-bit dense  ${g.displayName}`);
  }
  lines.push("", "Clusters:");
  const width = Math.max(16, ...clusters.map((c) => c.name.length));
  for (const c of clusters) {
    lines.push(`  ${c.name.padEnd(width)} ${c.gpusPerNode} x ${c.gpu.padEnd(14)} intra-node ${c.intraNode}, inter-node ${c.interNode}`);
  }
  io.out(lines.join("\n"));
  return 0;
}
