import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = join(import.meta.dirname, "..", "..", "bin", "meshplan.js");

function meshplan(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Bad input: one clear line on stderr naming the field, the value and what is valid; exit code 2; no stack trace. */
function expectBadInput(r: ReturnType<typeof meshplan>, ...mentions: string[]) {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe("");
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  for (const m of mentions) expect(r.stderr).toContain(m);
}

const dir = mkdtempSync(join(tmpdir(), "meshplan-cli-"));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("the efficiency factors fitted on published runs (default; --no-calibrated for the priors)", () => {
  it("slows the same plan by the calibration layer and says so; memory and the contract's shape do not change", () => {
    const args = ["simulate", "--model", "llama3-70b", "--gpus", "64", "--tp", "8", "--pp", "4", "--zero", "1"];
    const prior = JSON.parse(meshplan(...args, "--json", "--no-calibrated").stdout);
    const cal = JSON.parse(meshplan(...args, "--json").stdout);
    expect(JSON.parse(meshplan(...args, "--json", "--calibrated").stdout)).toEqual(cal);
    expect(Object.keys(cal).sort()).toEqual(Object.keys(prior).sort());
    expect(cal.cluster).toEqual(prior.cluster);
    expect(cal.memory).toEqual(prior.memory);
    // every fitted GEMM and attention factor is below 1 (models/hardware/calibration.json)
    expect(cal.time.stepSeconds).toBeGreaterThan(1.1 * prior.time.stepSeconds);
    for (const command of ["simulate", "plan"]) {
      const text = meshplan(command, ...args.slice(1));
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^efficiency calibrated on published runs \(models\/hardware\/calibration.json, fitted \d{4}-\d{2}-\d{2}/m);
      const priors = meshplan(command, ...args.slice(1), "--no-calibrated").stdout;
      expect(priors).not.toContain("efficiency calibrated");
      expect(priors).toMatch(/^efficiency: the priors alone \(--no-calibrated/m);
    }
  });
});

describe("meshplan simulate", () => {
  it("--json prints one Estimate with every field of the contract", () => {
    const r = meshplan("simulate", "--model", "llama3-70b", "--gpus", "64", "--tp", "8", "--pp", "4", "--zero", "1", "--recompute", "selective", "--json");
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(Object.keys(e).sort()).toEqual(["cluster", "communication", "memory", "model", "pipeline", "plan", "throughput", "time"]);
    expect(e.cluster).toEqual({ name: "dgx-h100", gpu: "h100-sxm", gpus: 64, gpusPerNode: 8 });
    for (const k of ["dp", "tp", "pp", "cp", "ep", "sequenceParallel", "virtualStages", "microBatch", "globalBatch", "seqLen", "schedule", "zero", "recompute", "precision", "layersPerStage", "recomputeLayersPerStage", "parameterServers", "asynchronous"]) {
      expect(e.plan).toHaveProperty(k);
    }
    expect(e.plan).toMatchObject({ dp: 2, tp: 8, pp: 4, cp: 1, ep: 1, zero: 1, recompute: "selective", layersPerStage: [20, 20, 20, 20] });
    for (const k of ["parametersBytes", "gradientsBytes", "optimizerBytes", "activationsBytes", "otherBytes"]) expect(e.memory.breakdown[k]).toBeGreaterThan(0);
    const b = e.time.breakdown;
    const sum = Object.values(b as Record<string, number>).reduce((x, y) => x + y, 0);
    expect(sum).toBeCloseTo(e.time.stepSeconds, 9);
    for (const k of ["computeSeconds", "tpCommSeconds", "cpCommSeconds", "ppCommSeconds", "dpCommSeconds", "bubbleSeconds", "optimizerSeconds"]) expect(b).toHaveProperty(k);
    for (const k of ["tokensPerSecond", "modelTflopsPerGpu", "hardwareTflopsPerGpu", "mfu", "hfu"]) expect(e.throughput[k]).toBeGreaterThan(0);
    expect(e.pipeline.microBatches).toBe(e.plan.globalBatch / (e.plan.dp * e.plan.microBatch));
    expect(Object.keys(e.communication.bytesPerGpuPerStep).sort()).toEqual(["cp", "dp", "ep", "pp", "tp"]);
  });

  it("prints a readable view without --json", () => {
    const r = meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--zero", "3", "--recompute", "full");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Memory per GPU");
    expect(r.stdout).toContain("Time per step");
    expect(r.stdout).toMatch(/MFU \d+\.\d%/);
    // No framework knob asked for: no framework line.
    expect(r.stdout).not.toContain("framework:");
  });

  it("names the framework knobs a plan runs with, and puts the in-line data-parallel traffic in the step", () => {
    const base = ["simulate", "--model", "llama3-8b", "--gpus", "8", "--tp", "2", "--zero", "3", "--recompute", "full", "--json"];
    const inline = meshplan(...base, "--dp-comm-blocking");
    expect(inline.code).toBe(0);
    const overlapped = JSON.parse(meshplan(...base).stdout);
    const blocking = JSON.parse(inline.stdout);
    expect(blocking.plan.dpCommBlocking).toBe(true);
    expect(blocking.time.breakdown.dpCommSeconds).toBeGreaterThan(overlapped.time.breakdown.dpCommSeconds);
    const text = meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--tp", "2", "--pp", "2", "--zero", "1", "--recompute", "full", "--tp-sync-backward", "--pp-blocking-sends", "--dp-comm-exposed");
    expect(text.stdout).toMatch(/^ +framework: --tp-sync-backward --pp-blocking-sends --dp-comm-exposed$/m);
    const split = meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--tp", "2", "--pp", "2", "--no-sp", "--zero", "1", "--recompute", "full", "--pp-scatter-gather");
    expect(split.stdout).toMatch(/^ +framework: --pp-scatter-gather$/m);
  });

  it("exits 1 for a plan that does not fit (the contract: no feasible plan), still printing the view", () => {
    const r = meshplan("simulate", "--model", "llama3-8b", "--gpus", "8");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("DOES NOT FIT");
    expect(r.stderr).toBe("");
    const j = meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--json");
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout).memory.fits).toBe(false);
  });

  it("accepts a Hugging Face config.json as --model", () => {
    const r = meshplan("simulate", "--model", join(import.meta.dirname, "..", "fixtures", "hf", "mixtral-8x7b", "config.json"), "--gpus", "64", "--ep", "8", "--zero", "3", "--recompute", "full", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).model).toBe("mixtral-8x7b");
  });
});

describe("meshplan models", () => {
  it("lists every built-in name of the contract", () => {
    const r = meshplan("models", "--json");
    expect(r.code).toBe(0);
    const all = JSON.parse(r.stdout);
    const names = (xs: { name: string }[]) => xs.map((x) => x.name);
    expect(names(all.models)).toEqual(expect.arrayContaining(["tiny-gpt", "gpt3-175b", "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3-405b", "mixtral-8x7b"]));
    expect(names(all.gpus)).toEqual(expect.arrayContaining(["v100-sxm-32gb", "a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm", "h100-pcie", "h200-sxm", "b200", "mi300x"]));
    expect(names(all.clusters)).toEqual(expect.arrayContaining(["dgx-a100-40gb", "dgx-a100-80gb", "dgx-h100", "dgx-h200", "dgx-b200", "pcie-h100"]));
  });
});

describe("bad input", () => {
  it("unknown model, GPU or cluster lists the valid names", () => {
    expectBadInput(meshplan("simulate", "--model", "llama9"), "--model", '"llama9"', "llama3-70b", "tiny-gpt");
    expectBadInput(meshplan("simulate", "--gpu", "h900"), "--gpu", '"h900"', "h100-sxm", "mi300x");
    expectBadInput(meshplan("simulate", "--cluster", "dgx-z"), "--cluster", '"dgx-z"', "dgx-h100", "pcie-h100");
  });

  it("a degree that does not divide: gpus, heads, layers, sequence", () => {
    expectBadInput(meshplan("simulate", "--gpus", "64", "--tp", "3"), "gpus", "64", "tp(3)");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "48", "--tp", "3"), "tp", "3", "attention heads");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "24", "--pp", "3"), "pp", "32 layers");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--cp", "8", "--seq", "1001"), "cp", "8", "1001 tokens");
    expectBadInput(meshplan("simulate", "--gpus", "64", "--dp", "4", "--tp", "8"), "dp(4) * tp(8) * pp(1) * cp(1) = 32 != gpus(64)");
    // with virtual stages the count of them is blamed, with the counts that split the layers evenly
    expectBadInput(meshplan("simulate", "--gpus", "64", "--tp", "4", "--pp", "4", "--schedule", "interleaved", "--vpp", "8"), "--vpp", "= 8", "one of 2, 4, 5, 10, 20", "--layers-per-stage");
  });

  it("sizes far beyond any cluster or batch are refused at once, not searched or simulated for minutes", () => {
    expectBadInput(meshplan("plan", "--gpus", "2147483648"), "--gpus", "2147483648", "1,048,576");
    expectBadInput(meshplan("simulate", "--tp", "8", "--pp", "8", "--global-batch", "99999999999999999999999"), "--global-batch", "16,777,216");
    // within the batch limit but beyond what one simulated step plays: the analytic plan is pointed to
    expectBadInput(meshplan("simulate", "--tp", "8", "--pp", "8", "--global-batch", "1000000"), "--global-batch", "1000000", "131,072 sequences", "meshplan plan");
  });

  it("malformed JSON or a missing field in a model file names the file and the field", () => {
    expectBadInput(meshplan("simulate", "--model", file("broken.json", "{ \"layers\": 2,")), "broken.json", "well-formed JSON");
    expectBadInput(meshplan("simulate", "--model", file("nohidden.json", JSON.stringify({ layers: 2, attentionHeads: 4, ffnHiddenSize: 256, mlp: "gelu", vocabSize: 256, seqLen: 32 }))), "nohidden.json", "hiddenSize", "(missing)");
    expectBadInput(meshplan("simulate", "--model", join(dir, "absent.json")), "--model", "no such file");
  });

  it("negative or zero sizes", () => {
    expectBadInput(meshplan("simulate", "--gpus", "0"), "--gpus", "0", ">= 1");
    expectBadInput(meshplan("simulate", "--gpus", "-8"), "--gpus", "-8");
    expectBadInput(meshplan("simulate", "--model", file("neg.json", JSON.stringify({ layers: -2, hiddenSize: 64, attentionHeads: 4, ffnHiddenSize: 256, mlp: "gelu", vocabSize: 256, seqLen: 32 }))), "neg.json", "layers", "-2", ">= 1");
    expectBadInput(meshplan("simulate", "--micro-batch", "0"), "--micro-batch", "0");
  });

  it("ZB-V: simulated with the embedding and the output layer on the first stage, searched when pinned, executed where its chunks are equal", () => {
    const args = ["--model", "llama3-8b", "--gpus", "8", "--pp", "4", "--dp", "2", "--micro-batch", "1", "--global-batch", "32", "--zero", "1", "--recompute", "full"];
    const sim = meshplan("simulate", ...args, "--schedule", "zb-v");
    expect(sim.code).toBe(0);
    expect(sim.stdout).toContain("zb-v");
    // the timeline shows weight-gradient passes and the head's stage as the critical one
    expect(sim.stdout).toMatch(/Timeline of one step.*critical: stage 0/);
    const json = JSON.parse(meshplan("simulate", ...args, "--schedule", "zb-v", "--json").stdout);
    const h1 = JSON.parse(meshplan("simulate", ...args, "--schedule", "zb-h1", "--json").stdout);
    expect(json.plan.schedule).toBe("zb-v");
    expect(json.plan.virtualStages).toBe(2);
    // twice 1F1B's pipeline traffic: two chunks' activations and gradients cross per micro-batch
    expect(json.communication.bytesPerGpuPerStep.pp).toBeCloseTo(2 * h1.communication.bytesPerGpuPerStep.pp, 6);
    const plan = meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--pp", "2", "--schedule", "zb-v", "--json");
    expect(plan.code).toBe(0);
    const ranked = JSON.parse(plan.stdout);
    expect(ranked.plans.length).toBeGreaterThan(0);
    for (const p of ranked.plans) expect(p.plan.schedule).toBe("zb-v");
    // the executor runs ZB-V's chunks equal and of whole layers (test/executor/splits.test.ts runs 4 layers
    // on 2 stages): tiny-gpt's 2 layers and 6 layers on 2 stages are refused before anything runs
    expectBadInput(meshplan("execute", "--pp", "2", "--schedule", "zb-v"), "--pp", "2 layers do not split into 2 x pp equal chunks");
    const tiny = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "models", "tiny-gpt.json"), "utf8"));
    const six = file("tiny-gpt-6.json", JSON.stringify({ ...tiny, name: "tiny-gpt-6", layers: 6 }));
    expectBadInput(meshplan("execute", "--model", six, "--pp", "2", "--schedule", "zb-v"), "--pp = 2", "valid: 3 (2 x pp dividing 6 layers)");
  });

  it("plan --ps K: pure data-parallel plans served by K servers, ranked and explained; no fit names the split plans that would", () => {
    const args = ["plan", "--model", "llama3-8b", "--gpus", "16", "--ps", "4"];
    const text = meshplan(...args, "--async", "--staleness", "2", "--top", "2");
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/ZeRO\s+servers\s+recompute/);
    expect(text.stdout).toContain("4 async/2");
    expect(text.stdout).toContain("Workers push gradients to 4 parameter servers");
    const json = JSON.parse(meshplan(...args, "--json").stdout);
    expect(json.plans.length).toBeGreaterThan(0);
    for (const e of json.plans) expect(e.plan).toMatchObject({ dp: 16, tp: 1, pp: 1, parameterServers: 4, asynchronous: false, zero: 0 });
    expectBadInput(meshplan(...args, "--tp", "2"), "--ps", "4", "0 when tp, pp, cp or ep > 1");
    expectBadInput(meshplan("plan", "--model", "llama3-8b", "--gpus", "16", "--async"), "--async", "without --ps");
    // 70B's whole weights and gradients overflow every worker: the advice searches again without servers
    const none = meshplan("plan", "--model", "llama3-70b", "--gpus", "64", "--ps", "8");
    expect(none.code).toBe(1);
    expect(none.stdout).toContain("No plan fits");
    expect(none.stdout).toMatch(/Without parameter servers \(leave out --ps\): a plan fits \(tp \d+ x pp \d+ x dp \d+/);
  });

  it("unknown flags, bad enum values and non-numbers", () => {
    expectBadInput(meshplan("simulate", "--tpp", "2"), "--tpp", "--tp");
    expectBadInput(meshplan("simulate", "--schedule", "zigzag"), "--schedule", "1f1b", "zb-h1");
    // ZB-V's two chunks are the schedule's own; one stage has no V to run
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--pp", "4", "--schedule", "zb-v", "--vpp", "4"), "--vpp", "4", "2 with the zb-v schedule");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--pp", "1", "--schedule", "zb-v"), "--pp", "2 or more with the zb-v schedule");
    expectBadInput(meshplan("simulate", "--tp", "eight"), "--tp", '"eight"', "an integer");
    expectBadInput(meshplan("simulate", "--allocator-cache-share", "6%"), "--allocator-cache-share", '"6%"', "a number");
    expectBadInput(meshplan("simulate", "--allocator-cache-share", "1.5"), "--allocator-cache-share (allocatorCacheShare)", "1.5", "a share from 0 to 1");
    expectBadInput(meshplan("simulate", "--gpu", "v100-sxm-32gb", "--precision", "bf16"), "precision", "fp16");
    // unasked, a GPU without bf16 trains in fp16 (the default used to be bf16 everywhere, refused on a V100)
    const v100 = meshplan("simulate", "--model", "gpt2-large", "--gpu", "v100-sxm-32gb", "--gpus", "8", "--json");
    expect(v100.code).toBe(0);
    expect(JSON.parse(v100.stdout).plan.precision).toBe("fp16");
    expectBadInput(meshplan("frobnicate"), "command", "frobnicate", "plan", "simulate", "explore", "execute", "calibrate", "validate", "models");
    // --help does not turn an unknown command into a success
    expectBadInput(meshplan("estimate", "--help"), "command", "estimate", "unknown command");
  });

  it("names what is really wrong: a Hugging Face config without model_type, a cluster file's GPU, a flag without its value, a typo", () => {
    const hf = file("config.json", JSON.stringify({ hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32 }));
    expectBadInput(meshplan("simulate", "--model", hf), "model_type = (missing)", "hidden_size", "llama, mistral");
    const cluster = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "hardware", "clusters", "dgx-h100.json"), "utf8"));
    const r = meshplan("simulate", "--cluster", file("h900.json", JSON.stringify({ ...cluster, gpu: "h900" })), "--gpus", "8");
    expectBadInput(r, "h900.json: gpu = \"h900\"", "h100-sxm");
    expect(r.stderr).not.toContain("--gpu");
    expectBadInput(meshplan("plan", "--gpus"), "--gpus = (missing)", "the flag needs a value", "--gpus N, an integer");
    // an unknown flag lists the command's flags only, the nearest first
    const typo = meshplan("models", "--jsn");
    expectBadInput(typo, "--jsn", "--json (the nearest)", "models reads: --json --help");
  });

  it("plan refuses pins that the search would drop, as simulate refuses them", () => {
    expectBadInput(meshplan("plan", "--gpus", "64", "--async"), "--async", "asynchronous updates need parameter servers");
    expectBadInput(meshplan("plan", "--gpus", "64", "--staleness", "2"), "--staleness", "0 without --async");
    expectBadInput(meshplan("plan", "--gpus", "64", "--vpp", "2", "--schedule", "1f1b"), "--vpp", "interleaved");
    expectBadInput(meshplan("plan", "--gpus", "64", "--zero", "0", "--shard-group", "4"), "--shard-group", "ZeRO 0 shards nothing");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--zero", "2", "--schedule", "gpipe"), "--schedule", "1f1b with pp 1, or pp >= 2");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--tp", "1", "--sp"), "--sp", "with tp 1");
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--ps", "2", "--async", "--staleness", "0"), "--staleness", ">= 1 with --async");
  });

  it("a flag the command does not read is refused, naming that command's flags", () => {
    // plan used to accept --trace and write nothing; simulate shows one plan, so --top means nothing there
    expectBadInput(meshplan("plan", "--model", "tiny-gpt", "--gpus", "4", "--trace", join(dir, "t.json")), "--trace", "plan does not read --trace", "--top");
    expectBadInput(meshplan("simulate", "--model", "tiny-gpt", "--gpus", "4", "--top", "3"), "--top = 3", "simulate does not read --top", "--trace");
    expectBadInput(meshplan("validate", "--model", "tiny-gpt"), "--model", "validate does not read --model", "--planner");
    expectBadInput(meshplan("execute", "--calibrated"), "--calibrated", "execute does not read --calibrated", "--warmup");
    // what the executor cannot honour (it ran --precision fp8 in float32 and said nothing)
    expectBadInput(meshplan("execute", "--precision", "fp8"), "--precision", "train in float32");
    expectBadInput(meshplan("execute", "--gpu", "b200"), "--gpu", "calibrated profile");
    expectBadInput(meshplan("execute", "--tp", "2", "--tp-comm-overlap"), "--tp-comm-overlap", "collectives of their own");
    // knobs whose every value but the default the executor refuses: refused by name, each with its reason
    expectBadInput(meshplan("execute", "--dp", "2", "--zero", "3", "--shard-group", "2"), "--shard-group = 2", "execute does not read --shard-group", "hybrid sharding is not executed");
    expectBadInput(meshplan("execute", "--optimizer-state-bytes", "6"), "execute does not read --optimizer-state-bytes", "12 bytes per parameter");
    expectBadInput(meshplan("execute", "--optimizer-step-bytes", "30"), "execute does not read --optimizer-step-bytes", "measures its own optimizer step");
    expectBadInput(meshplan("execute", "--tp", "2", "--pp", "2", "--no-sp", "--pp-scatter-gather"), "execute does not read --pp-scatter-gather", "whole activations");
  });

  it("execute refuses an interleaved layout it cannot run, and does not suggest one (the cost model's ends one layer short)", () => {
    expectBadInput(meshplan("execute", "--pp", "2", "--vpp", "2", "--layers-per-stage", "1,1"), "--vpp (virtualStages) = 2", "equal chunks of whole layers", "valid: 1 (");
    const r = meshplan("execute", "--pp", "2", "--vpp", "2");
    expectBadInput(r, "--vpp (virtualStages) = 2", "not executed");
    expect(r.stderr).not.toContain("e.g. 1,1");
    // simulate takes that layout and still names it
    expectBadInput(meshplan("simulate", "--model", "tiny-gpt", "--gpus", "2", "--pp", "2", "--vpp", "2"), "e.g. 1,1", "valid: 1 (no interleaving");
  });

  it("a native TensorFlow.js backend that is not installed is refused before any work, naming the package", () => {
    // the CI machine cannot install them (their install downloads libtensorflow)
    expectBadInput(meshplan("execute", "--backend", "tensorflow-gpu"), "--backend", "@tensorflow/tfjs-node-gpu is not installed", "auto, wasm or cpu");
    expectBadInput(meshplan("calibrate", "--backend", "tensorflow", "--profile", join(dir, "p.json")), "@tensorflow/tfjs-node is not installed");
  });

  it("a flag given twice is refused, where the last value used to win silently", () => {
    expectBadInput(meshplan("plan", "--gpus", "4", "--gpus=8"), "--gpus = [4,8]", "given twice");
    expectBadInput(meshplan("simulate", "--sp", "--no-sp"), "--sp = [true,false]", "given twice");
  });

  it("an unknown field in a model or cluster file is refused, where a misspelt optional field fell back to its default", () => {
    const model = { name: "m", layers: 2, hiddenSize: 64, attentionHeads: 4, kvHead: 2, ffnHiddenSize: 256, mlp: "gelu", vocabSize: 256, seqLen: 32 };
    expectBadInput(meshplan("simulate", "--model", file("typo.json", JSON.stringify(model))), "typo.json", "kvHead = 2", "unknown field", "kvHeads");
    const moe = { ...model, kvHead: undefined, moe: { experts: 8, topk: 2 } };
    expectBadInput(meshplan("simulate", "--model", file("moe.json", JSON.stringify(moe))), "moe.json", "moe.topK", "(missing)");
    const cluster = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "hardware", "clusters", "dgx-h100.json"), "utf8"));
    cluster.interNode.latencySecond = 1e-6;
    expectBadInput(meshplan("simulate", "--model", "tiny-gpt", "--gpus", "2", "--cluster", file("c.json", JSON.stringify(cluster))), "c.json", "interNode.latencySecond", "unknown field");
  });

  it("--recompute full with a partial --recompute-layers is refused: the unlisted layers would not be recomputed", () => {
    expectBadInput(meshplan("simulate", "--model", "tiny-gpt", "--gpus", "4", "--pp", "2", "--recompute", "full", "--recompute-layers", "1,0"), "--recompute-layers (recomputeLayersPerStage) = [1,0]", "recompute full recomputes every layer", "recompute none or selective");
    const partial = meshplan("simulate", "--model", "tiny-gpt", "--gpus", "4", "--pp", "2", "--recompute", "none", "--recompute-layers", "1,0");
    expect(partial.code).toBe(0);
    expect(partial.stdout).toContain("recompute none + 1 full (full per stage 1/0)");
  });
});

describe("a reader that stops early", () => {
  it("ends the command quietly with 141 (128 + SIGPIPE), without a stack trace", async () => {
    const child = spawn(process.execPath, [BIN, "validate", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // read the first chunk, then close the pipe as `| head -1` does
    await new Promise<void>((done) => child.stdout.once("data", () => { child.stdout.destroy(); done(); }));
    const code = await new Promise<number | null>((done) => child.on("close", (c) => done(c)));
    expect(code).toBe(141);
    expect(stderr).toBe("");
  });
});

describe("meshplan plan: pins that cannot hold say why", () => {
  it("a micro-batch that divides no per-replica batch names the field and the divisors", () => {
    const r = meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--micro-batch", "3");
    expectBadInput(r, "--micro-batch (microBatch) = 3", "a divisor of the per-replica batch", "1, 2, 4, 8");
  });

  it("with dp pinned and the other degrees free, a too-large micro-batch is blamed, not a made-up mesh", () => {
    // tp, pp and cp are free: dp 4 fits 64 GPUs (e.g. tp 8 x pp 2); only the micro-batch cannot split 512 / 4
    const r = meshplan("plan", "--model", "llama3-70b", "--gpus", "64", "--dp", "4", "--micro-batch", "256");
    expectBadInput(r, "--micro-batch (microBatch) = 256", "global batch 512 / dp 4 = 128");
    expect(r.stderr).not.toContain("--dp");
  });

  it("a pinned degree the GPUs cannot hold is named, not the GPU count, nor degrees the search would choose", () => {
    expectBadInput(meshplan("plan", "--model", "llama3-8b", "--gpus", "4", "--tp", "8"), "--tp = 8", "must divide gpus(4)", "valid: 1, 2, 4");
    expectBadInput(meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--tp", "2", "--pp", "8"), "--pp = 8", "pinned degrees before it (2)", "valid: 1, 2, 4");
    // where every degree is given, the GPU count is still what is named, as a flag
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "4", "--tp", "8"), "--gpus = 4", "a multiple of tp * pp * cp = 8");
  });

  it("execute names a model too large for this machine as the --model flag", () => {
    expectBadInput(meshplan("execute", "--model", "llama3-70b", "--steps", "1"), '--model = "llama3-70b', "M parameters on this machine");
  });

  it("virtual stages that overflow the layers are named as --vpp, not pp", () => {
    expectBadInput(meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--pp", "2", "--vpp", "32"), "--vpp (virtualStages) = 32", "valid: at most 16");
  });

  it("a pinned dp that the GPUs cannot hold with the other pins lists the dp values that can", () => {
    const r = meshplan("plan", "--model", "llama3-70b", "--gpus", "64", "--dp", "3", "--tp", "8");
    expectBadInput(r, "--dp = 3", "pinned degrees (24) must divide gpus(64)", "valid: 1, 2, 4, 8");
  });

  it("a tensor-parallel degree the heads do not split over names the heads", () => {
    const r = meshplan("plan", "--model", "llama3-8b", "--gpus", "6", "--tp", "3");
    expectBadInput(r, "--tp = 3", "attention heads (32)");
  });

  it("a rejected plan field is named as the flag that set it", () => {
    const r = meshplan("simulate", "--model", "llama3-8b", "--gpus", "8", "--tp", "8", "--tp-sync-backward", "--tp-comm-overlap");
    expectBadInput(r, "--tp-sync-backward (tpSyncBackward) = true", "false with tpCommOverlap");
  });

  it("DeepSpeed's engine flags on a search whose best plans have no pipeline: said below the table", () => {
    const r = meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--dp-comm-exposed", "--zero", "3", "--top", "2");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--dp-comm-exposed describes DeepSpeed's pipeline engine: the plans without a pipeline (pp 1) run without it");
  });
});

describe("meshplan simulate: a default it had to change", () => {
  it("says when the default global batch was rounded up to fit dp x micro-batch", () => {
    const r = meshplan("simulate", "--model", "llama3-70b", "--gpus", "64", "--tp", "8", "--pp", "4", "--micro-batch", "3");
    expect(r.stdout.split("\n")).toContain("global batch 516 sequences: the default 512 rounded up to a multiple of dp x micro-batch (--global-batch sets it)");
    const plain = meshplan("simulate", "--model", "llama3-70b", "--gpus", "64", "--tp", "8", "--pp", "4");
    expect(plain.stdout).not.toContain("rounded up");
  });
});

describe("meshplan COMMAND --help", () => {
  it("shows that command's usage and only the flags it reads", () => {
    const r = meshplan("validate", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe("usage: meshplan validate [flags]");
    expect(r.stdout).toContain("--planner");
    expect(r.stdout).not.toContain("--tp N");
    const p = meshplan("plan", "--help");
    expect(p.stdout).toContain("--tp N");
    expect(p.stdout).toContain("--top K");
    expect(p.stdout).not.toContain("--steps");
    // execute lists apart the flags it refuses, not among those it reads
    const e = meshplan("execute", "--help");
    for (const refused of ["--shard-group N", "--optimizer-state-bytes N", "--optimizer-step-bytes N", "--grad-accum-bytes N", "--runtime-reserve-bytes N", "--allocator-cache-share F", "--pp-scatter-gather"]) expect(e.stdout).not.toMatch(new RegExp(`^  ${refused}`, "m"));
    // A mixture of experts runs with its experts split over the data-parallel ranks (model/moe.ts).
    expect(e.stdout).toMatch(/^  --ep N +expert-parallel degree/m);
    expect(e.stdout).toMatch(/^refused \(execute --FLAG says why\): .*--optimizer-state-bytes --optimizer-step-bytes --grad-accum-bytes --runtime-reserve-bytes --allocator-cache-share --pp-scatter-gather --shard-group/m);
    expect(e.stdout).toMatch(/^  --global-batch N +sequences per step \(default: the model's, else 8, tiny-gpt's\)$/m);
    const all = meshplan("--help");
    expect(all.stdout).toContain("commands (meshplan COMMAND --help for one):");
    expect(all.stdout).toContain("--steps");
  });
});

describe("meshplan plan: the framework knobs given are said", () => {
  it("names the best plan's framework flags before the explanation, and nothing without them", () => {
    const given = meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--top", "2", "--grad-accum-bytes", "6", "--launch-blocking");
    expect(given.code).toBe(0);
    const lines = given.stdout.split("\n");
    const at = lines.findIndex((l) => l.startsWith("Framework, as given"));
    expect(lines[at]).toBe("Framework, as given (doc/cost-model.md): --launch-blocking --grad-accum-bytes 6.");
    expect(lines[at + 1]).toMatch(/^Best: /);
    const json = JSON.parse(meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--top", "2", "--grad-accum-bytes", "6", "--json").stdout) as { plans: { plan: { gradientAccumulationBytesPerParam?: number } }[] };
    for (const e of json.plans) expect(e.plan.gradientAccumulationBytesPerParam).toBe(6);
    expect(meshplan("plan", "--model", "llama3-8b", "--gpus", "8", "--top", "2").stdout).not.toContain("Framework, as given");
  });
});

describe("meshplan simulate --zbv-passes: ZB-V's order found for the pass lengths given, else for the priced passes", () => {
  const tiny4 = JSON.stringify({ ...JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "models", "tiny-gpt.json"), "utf8")), name: "tiny-gpt-4", layers: 4 });
  it("plays the order found for them (in the plan's JSON), and refuses lengths off the grid or without ZB-V, naming the flag", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-zbv-"));
    const file = join(dir, "tiny4.json");
    writeFileSync(file, tiny4);
    const args = ["simulate", "--model", file, "--gpus", "2", "--pp", "2", "--schedule", "zb-v", "--no-flash", "--json"];
    type Out = { plan: { vPassRatios?: { backward: number; weight: number } }; pipeline: { bubbleFraction: number } };
    const priced = JSON.parse(meshplan(...args).stdout) as Out;
    const given = JSON.parse(meshplan(...args, "--zbv-passes", "2,0.5").stdout) as Out;
    // tiny-gpt's layer on an H100 is mostly element-wise work: B 1.25 forwards and W 0.75 as priced, where its FLOPs say 1 and 1
    expect(priced.plan.vPassRatios).toEqual({ backward: 1.25, weight: 0.75 });
    expect(given.plan.vPassRatios).toEqual({ backward: 2, weight: 0.5 });
    expect(given.pipeline.bubbleFraction).not.toBeCloseTo(priced.pipeline.bubbleFraction, 3);
    const text = meshplan(...args.filter((a) => a !== "--json")).stdout;
    expect(text).toContain("zb-v (order for B 1.25, W 0.75)");
    const planned = meshplan("plan", "--model", file, "--gpus", "2", "--pp", "2", "--micro-batch", "1", "--schedule", "zb-v", "--no-flash", "--top", "1").stdout;
    expect(planned).toContain("zb-v (its order found for B = 1.25 and W = 0.75 chunk forwards)");
    expectBadInput(meshplan(...args, "--zbv-passes", "2,0.3"), "--zbv-passes", "2,0.3", "multiple of 0.25");
    expectBadInput(meshplan(...args, "--zbv-passes", "2"), "--zbv-passes", "two numbers B,W");
    expectBadInput(meshplan("simulate", "--model", file, "--gpus", "2", "--pp", "2", "--zbv-passes", "2,0.5"), "--zbv-passes", "unless the schedule is zb-v");
  });
});

describe("meshplan plan: the table says enough to replay each plan", () => {
  it("each listed pipeline's layers cell is the layout of the same plan in --json (runners-up laid out unevenly included)", () => {
    const args = ["plan", "--model", "llama3-8b", "--gpus", "8", "--top", "5"];
    const text = meshplan(...args);
    const json = JSON.parse(meshplan(...args, "--json").stdout) as { plans: { plan: { pp: number; layersPerStage: number[] } }[] };
    const lines = text.stdout.split("\n");
    const head = lines.findIndex((l) => l.startsWith("#  dp"));
    const at = lines[head]!.indexOf("layers");
    expect(at).toBeGreaterThan(0);
    const expand = (cell: string) => cell === "-" ? [] : cell.split(",").flatMap((x) => (x.includes("x") ? Array(Number(x.split("x")[1])).fill(Number(x.split("x")[0])) : [Number(x)]));
    let uneven = 0;
    json.plans.forEach((e, i) => {
      const cell = lines[head + 1 + i]!.slice(at).split(/\s+/)[0]!;
      expect(expand(cell)).toEqual(e.plan.pp > 1 ? e.plan.layersPerStage : []);
      if (e.plan.pp > 1 && new Set(e.plan.layersPerStage).size > 1) uneven++;
    });
    expect(uneven).toBeGreaterThan(0); // the case that could not be replayed from the table before
  });
});
