import { loadCluster } from "../src/cli/catalog.js";
import { buildPipeline } from "../src/simulator/build-pipeline.js";
import { runGraph } from "../src/simulator/engine.js";
import { simulate } from "../src/simulator/simulate.js";
import type { SimInput, SimStage } from "../src/simulator/types.js";
import { resolvePlan } from "../src/spec/plan.js";
import type { ClusterShape, ModelSpec } from "../src/spec/types.js";
import { formatSeconds, timePerCall, type BenchRow } from "./util.js";

/**
 * The simulator's two speed targets (issue 4): at least 2 million events per second through the engine,
 * and a whole interleaved 1F1B step with p = 64 stages, m = 512 micro-batches and v = 2 chunks in under
 * a second (cost model, graph, event loop and analysis together).
 */
export function bench(): BenchRow[] {
  // Engine only: a prebuilt graph of that step with tp collectives, transfers and bucketed gradient reduction.
  const stage: SimStage = {
    forwardSeconds: 1e-3, backwardInputSeconds: 1e-3, backwardWeightSeconds: 1e-3, recomputeSeconds: 0,
    tp: { forward: 1e-4, backward: 1e-4 }, cp: { forward: 0, backward: 0 }, ep: { forward: 0, backward: 0 },
    dp: { reduceOnceSeconds: 1e-2, gatherOnceSeconds: 0, gatherForwardSeconds: 0, gatherBackwardSeconds: 0, reducePerMicroBatchSeconds: 0, buckets: 4 },
    optimizerSeconds: 1e-3, memory: { perMicroBatchBytes: 1, backwardTransientBytes: 0, lossBytes: 0 },
  };
  const input: SimInput = { schedule: "interleaved", microBatches: 512, virtualStages: 2, stages: Array.from({ length: 64 }, () => stage), ppTransferSeconds: 5e-5 };
  const { graph } = buildPipeline(input).builder.freeze();
  const perRun = timePerCall(() => {
    runGraph(graph);
  }, 1, 15);
  const eventsPerSecond = graph.size / perRun;

  // End to end on a real plan: a 128-layer GPT on 512 H100s, tp 8 x pp 64 (2 layers per chunk), 512 micro-batches.
  const model: ModelSpec = {
    name: "gpt-128x8192", displayName: "128-layer GPT (bench)", layers: 128, hiddenSize: 8192, attentionHeads: 64, kvHeads: 8,
    headDim: 128, ffnHiddenSize: 28672, mlp: "swiglu", norm: "rmsnorm", vocabSize: 128256, tiedEmbeddings: false,
    positionEmbedding: "rope", linearBias: false, qkvBias: false, dropout: false, seqLen: 4096, globalBatch: undefined,
    moe: undefined, publishedParameters: undefined, source: "synthetic, for the benchmark",
  };
  const spec = loadCluster("dgx-h100");
  const shape: ClusterShape = { spec, gpus: 512, gpusPerNode: 8 };
  const plan = resolvePlan(model, shape, { tp: 8, pp: 64, virtualStages: 2, globalBatch: 512, zero: 1 });
  let ops = 0;
  const perStep = timePerCall(() => {
    ops = simulate(model, shape, plan).timeline.ops.size;
  }, 1, 7);

  const millions = (x: number) => `${(x / 1e6).toFixed(1)} M events/s`;
  return [
    { name: `simulator engine (${graph.size.toLocaleString("en-US")} events: interleaved p=64, m=512, v=2)`, target: millions(2e6), median: millions(eventsPerSecond), ratio: (eventsPerSecond / 2e6).toFixed(1) },
    { name: `simulate() interleaved 1F1B p=64, m=512, v=2 (${ops.toLocaleString("en-US")} ops, 512 GPUs)`, target: "1 s", median: formatSeconds(perStep), ratio: (1 / perStep).toFixed(1) },
  ];
}
