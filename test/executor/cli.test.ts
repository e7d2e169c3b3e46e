import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { calibrateCommand } from "../../src/cli/calibrate.js";
import { executeCommand } from "../../src/cli/execute.js";
import type { ParsedArgs } from "../../src/cli/args.js";
import type { Io } from "../../src/cli/io.js";
import { loadModel } from "../../src/cli/catalog.js";
import { ageOf, executePlan } from "../../src/executor/index.js";
import { otherMachine } from "../../src/executor/measure/machine.js";
import type { ExecuteReport } from "../../src/executor/measure/report.js";
import { chooseSavedProfile, profileOnDisk } from "../../src/cli/profile-file.js";
import type { DeviceProfile } from "../../src/executor/measure/profile.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";

function io(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

function args(command: string, flags: Record<string, unknown>): ParsedArgs {
  return { command, flags: flags as ParsedArgs["flags"] };
}

const profile = join(mkdtempSync(join(tmpdir(), "meshplan-exec-")), "profile.json");

type Probe = { model: Record<string, unknown>; plan: Record<string, unknown> };
function withProbe(p: Record<string, unknown>, edit: (probe: Probe) => unknown): Record<string, unknown> {
  const c = p.concurrency as { probe: Probe };
  return { ...p, concurrency: { ...c, probe: edit(c.probe) } };
}

describe("meshplan calibrate and execute", () => {
  it("calibrate measures this machine and saves a profile", async () => {
    const out = io();
    expect(await calibrateCommand(args("calibrate", { profile }), out)).toBe(0);
    const p = JSON.parse(readFileSync(profile, "utf8"));
    expect(p.version).toBe(1);
    expect(p.peakFlopsPerSecond).toBeGreaterThan(1e8);
    expect(p.collectiveBytesPerSecond).toBeGreaterThan(1e7);
    // Four small GPTs, two of which differ only in tokens per micro-batch (h64 at 32 and 8): with that pair
    // the fixed cost per GEMM and the element-wise rate are both fitted, and the fit follows every shape.
    expect(p.fit.map((f: { shape: string }) => f.shape)).toEqual(["h64 s32 L2", "h64 s8 L2", "h128 s32 L2", "h64 s64 L4"]);
    expect(p.opOverheadSeconds).toBeGreaterThanOrEqual(0);
    for (const f of p.fit) {
      expect(f.fittedSeconds / f.measuredSeconds, f.shape).toBeGreaterThan(2 / 3);
      expect(f.fittedSeconds / f.measuredSeconds, f.shape).toBeLessThan(3 / 2);
    }
    // The input embedding timed at each fit shape against the cost model's bytes, and the line through them.
    expect(p.embedding.measured.map((e: { shape: string }) => e.shape)).toEqual(p.fit.map((f: { shape: string }) => f.shape));
    for (const e of p.embedding.measured) expect(e.seconds, e.shape).toBeGreaterThan(0);
    expect(p.embedding.bytesPerSecond).toBeGreaterThan(0);
    expect(p.embedding.overheadSeconds).toBeGreaterThanOrEqual(0);
    expect(out.stdout.join("\n")).toMatch(/input embedding \(float32\) .* us per pass/);
    // A mixture of experts' routing (tiny-moe's experts in each fit shape), the same way.
    expect(p.moeRouting.measured.map((e: { shape: string }) => e.shape)).toEqual(p.fit.map((f: { shape: string }) => f.shape));
    for (const e of p.moeRouting.measured) expect(e.seconds, e.shape).toBeGreaterThan(0);
    expect(p.moeRouting.bytesPerSecond).toBeGreaterThan(0);
    expect(out.stdout.join("\n")).toMatch(/experts' routing \(float32\) .* us per pass/);
    // Pass-time jitter with every core busy: two pass lengths (forwards shorter than backwards), a spread each.
    if (cpus().length > 1) {
      expect(p.passJitter.forward.meanSeconds).toBeLessThan(p.passJitter.backward.meanSeconds);
      expect(p.passJitter.forward.logSd).toBeGreaterThan(0);
      expect(p.passJitter.backward.logSd).toBeGreaterThan(0);
      // Each step's 8 forwards but the first (its new weights' first use is priced apart) and 8 backwards.
      expect(p.passJitter.samples).toBe(cpus().length * 10 * 15);
      expect(p.passJitter.ranks).toBe(cpus().length);
      // With more cores than two, the same again with two copies (for runs of fewer ranks than cores).
      if (cpus().length > 2) expect(p.passJitter.fewerRanks).toMatchObject({ ranks: 2, samples: 2 * 10 * 15 });
      else expect(p.passJitter.fewerRanks).toBeUndefined();
      // The concurrency step names its model and plan, so that execute can run it again as its speed probe.
      expect(p.concurrency.probe.model.hiddenSize).toBe(64);
      expect(p.concurrency.probe.plan.globalBatch).toBe(8);
      expect(p.concurrency.fittedSeconds).toBe(p.fit[0].fittedSeconds);
      // Waits at a collective of two, one point per wait run (waits.ts WAIT_RUNS: tp2 of h64 s8 L2 and of
      // h128 s32 L2, cp2 of h64 s8 L2 and of h64 s64 L4, dp2 x ep2 of h64 s8 L2 and h128 s32 L2 with
      // experts), each group's segments lengthening in that order.
      expect(p.syncWaits.members).toBe(2);
      expect(p.syncWaits.ranks).toBe(2 * Math.floor(cpus().length / 2));
      const points = p.syncWaits.points as { segmentSeconds: number; waitSeconds: number; group: string }[];
      expect(points.map((x) => x.group)).toEqual(["tp", "tp", "cp", "cp", "ep", "ep"]);
      // Measured times on a shared machine: the order is the claim (the designed segments are about 0.15 and
      // 0.4 ms, but CI under load measured 1.49x), as for cp below.
      expect(points[1]!.segmentSeconds).toBeGreaterThan(points[0]!.segmentSeconds);
      expect(points[3]!.segmentSeconds).toBeGreaterThan(points[2]!.segmentSeconds);
      expect(points[5]!.segmentSeconds).toBeGreaterThan(points[4]!.segmentSeconds);
      for (const x of points) expect(x.waitSeconds).toBeGreaterThan(0);
      expect(out.stdout.join("\n")).toMatch(/waits at a collective of 2 with \d+ ranks busy: .* ms after .* ms \(tp\), .* \(cp\), .* \(ep\)/);
    }
    expect(out.stdout.join("\n")).toMatch(/matrix multiply/);
    // A whole calibration takes about a minute alone on a 2-core machine and more while the rest of the
    // suite shares its cores (CI timed it out at 60 s): the limit is a hang guard, not a speed target.
  }, 300_000);

  it("execute --json prints the contract: plan, engine, predicted, measured, numerics", async () => {
    const out = io();
    const code = await executeCommand(args("execute", { model: "tiny-gpt", pp: 2, "global-batch": 4, json: true, profile, steps: 3, warmup: 2 }), out);
    // Two warm-up steps before the three timed ones, named so on the progress bar.
    const progress = out.stderr.join("\n");
    expect(progress).toMatch(/step 2\/5 \(warm-up, not timed\)/);
    expect(progress).toMatch(/step 5\/5$/m);
    expect(code).toBe(0);
    expect(out.stdout).toHaveLength(1);
    const r = JSON.parse(out.stdout[0]!);
    expect(Object.keys(r)).toEqual(expect.arrayContaining(["plan", "engine", "predicted", "measured", "numerics"]));
    expect(r.engine).toEqual({ name: "tfjs", backend: "wasm", devices: 2, heapCollectives: false }); // pp2: no tp or cp collective
    expect(Object.keys(r.predicted)).toEqual(expect.arrayContaining(["memory", "time", "communication", "pipeline"]));
    const m = r.measured;
    expect(m.stepSeconds).toBeGreaterThan(0);
    expect(m.bubbleFraction).toBeGreaterThan(0);
    expect(m.peakBytesPerRank).toHaveLength(2);
    // 4 micro-batches, each one activation (stage 0) or gradient (stage 1) of 32 x 64 floats
    expect(m.commBytesPerRank).toEqual([{ tp: 0, cp: 0, pp: 4 * 4 * 32 * 64, dp: 0, ep: 0 }, { tp: 0, cp: 0, pp: 4 * 4 * 32 * 64, dp: 0, ep: 0 }]);
    // Every step trains and is checked, the warm-up ones too; only the timing leaves them out.
    expect(m.losses).toHaveLength(5);
    expect(m.warmupSteps).toBe(2);
    expect(r.numerics.referenceLosses).toHaveLength(5);
    expect(r.numerics.maxRelativeError).toBeLessThan(1e-4);
    // Two ranks with a core each: the speed probe ran beside every step, and the prediction is at its speed.
    if (cpus().length >= 2) {
      expect(r.speed.probe).toBe("h64 s32 L2, 8 micro-batches, 2 at once");
      expect(r.speed.runSeconds).toBeGreaterThan(0);
      expect(r.speed.calibrationSeconds).toBeGreaterThan(0);
      expect(r.notes.join("\n")).toMatch(/predicted at the machine's speed during the run/);
    }
  });

  it("execute prints predicted against measured side by side", async () => {
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", tp: 2, "global-batch": 2, profile, steps: 2, warmup: 1 }), out)).toBe(0);
    const text = out.stdout.join("\n");
    expect(text).toMatch(/2 timed steps after 1 warm-up step\b/);
    expect(text).toMatch(/predicted +measured +difference/);
    // Two timed steps: the interval of their median is their range, which holds it with probability 1/2.
    expect(text).toMatch(/^ +step time +[\d.]+ ms +[\d.]+ ms +[+-][\d.]+%\n +median, 50% interval +[\d.]+ ms-[\d.]+ ms$/m);
    // tp bytes: the cost model counts everything the ranks send (re-gathers, cross-entropy, SP gradient sum).
    expect(text).toMatch(/^ +tp +[\d.]+ [kM]B +[\d.]+ [kM]B +\+0\.0%$/m);
    expect(text).toMatch(/^note: tp collectives read the other ranks' data in their shared wasm heaps/m);
  });

  it("--no-shared-heap keeps the heaps unshared: the report says the tensors went through the slots", async () => {
    for (const shared of [true, false]) {
      const out = io();
      expect(await executeCommand(args("execute", { model: "tiny-gpt", tp: 2, "global-batch": 2, profile, steps: 1, warmup: 0, json: true, "shared-heap": shared }), out)).toBe(0);
      const r = JSON.parse(out.stdout.join("\n")) as ExecuteReport;
      expect(r.engine.heapCollectives).toBe(shared);
      expect(r.notes).toContain(shared ? "tp collectives read the other ranks' data in their shared wasm heaps (no copy through the fabric's slots)"
        : "tp collectives copied their data through the fabric's slots");
    }
  });

  it("--warmup must be a count: a negative one is bad input naming the flag", async () => {
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, warmup: -1, profile }), out)).toBe(2);
    expect(out.stderr).toEqual([expect.stringMatching(/^meshplan: --warmup = -1 is not valid.*an integer >= 0/)]);
  });

  it("a --profile file holding JSON that is not an object is bad input naming the file, not an internal error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-badprofile-"));
    for (const text of ["null", "[1]", "3"]) {
      const file = join(dir, "p.json");
      writeFileSync(file, text);
      const out = io();
      expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, profile: file }), out)).toBe(2);
      expect(out.stderr).toEqual([expect.stringContaining(`${file}: (profile) = ${text} is not valid`)]);
    }
  });

  it("an edited or truncated profile is bad input before the run, naming the field (it failed inside the simulator, or predicted a collective as free)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-badprofile-"));
    const good = JSON.parse(readFileSync(profile, "utf8")) as Record<string, unknown>;
    const cases: [Record<string, unknown>, string][] = [
      [{ version: 1, peakFlopsPerSecond: 1, opOverheadSeconds: 1 }, "machine = (missing)"],
      [{ ...good, elementwiseBytesPerSecond: -1 }, "elementwiseBytesPerSecond = -1 is not valid; valid: a number > 0"],
      [{ ...good, collectiveBytesPerSecond: "fast" }, 'collectiveBytesPerSecond = "fast" is not valid'],
      [{ ...good, fit: null }, "fit = null is not valid; valid: a non-empty list"],
      [{ ...good, matmul: [{ n: 64, seconds: -1, flopsPerSecond: 1e9 }] }, "matmul[0].seconds = -1 is not valid"],
      // Each of these was an internal error (exit 70) or a failure inside a rank (exit 1).
      [{ ...good, syncWaits: "x" }, 'syncWaits = "x" is not valid; valid: an object as meshplan calibrate writes it'],
      [{ ...good, passJitter: null }, "passJitter = null is not valid"],
      [{ ...good, concurrency: { probe: "zzz" } }, "concurrency.ranks = (missing) is not valid"],
      [{ ...good, concurrency: { ...(good.concurrency as object), probe: "zzz" } }, 'concurrency.probe = "zzz" is not valid'],
      [withProbe(good, (p) => ({ ...p, plan: { ...p.plan, dp: 2 } })), "concurrency.probe.plan.dp = 2 is not valid; valid: 1: the probe is the one-rank step"],
      [withProbe(good, (p) => ({ ...p, model: { ...p.model, hiddenSize: "big" } })), 'concurrency.probe.model.hiddenSize = "big" is not valid'],
      [{ ...good, syncWaits: { members: 2, ranks: 2, points: [{ segmentSeconds: 1e-3, waitSeconds: 1e-4, group: "dp" }] } }, 'syncWaits.points[0].group = "dp" is not valid; valid: tp, cp, ep'],
      [{ ...good, passJitter: { ...(good.passJitter as object), forward: { meanSeconds: 0.01 } } }, "passJitter.forward.logSd = (missing) is not valid"],
      [{ ...good, loss: { overheadSeconds: 1e-4 } }, "loss.bytesPerSecond = (missing) is not valid"],
      [{ ...good, embedding: { overheadSeconds: 1e-5, bytesPerSecond: 0, measured: [{ shape: "h64 s32 L2", bytes: 2e5, seconds: 1e-4 }] } }, "embedding.bytesPerSecond = 0 is not valid"],
      [{ ...good, embedding: { overheadSeconds: 1e-5, bytesPerSecond: 2e9, measured: [{ shape: "h64 s32 L2", bytes: 2e5 }] } }, "embedding.measured[0].seconds = (missing) is not valid"],
      [{ ...good, passJitter: { ...(good.passJitter as object), fewerRanks: { ranks: 0, samples: 1, forward: { meanSeconds: 1e-3, logSd: 0.1 }, backward: { meanSeconds: 2e-3, logSd: 0.1 } } } }, "passJitter.fewerRanks.ranks = 0 is not valid"],
      [{ ...good, passJitter: { ...(good.passJitter as object), fewerRanks: { ranks: 2, samples: 1, forward: { meanSeconds: 1e-3, logSd: -0.1 }, backward: { meanSeconds: 2e-3, logSd: 0.1 } } } }, "passJitter.fewerRanks.forward.logSd = -0.1 is not valid"],
      [{ ...good, syncWaits: { ...(good.syncWaits as object), fewerRanks: { ranks: 2, points: [] } } }, "syncWaits.fewerRanks.points = [] is not valid; valid: a non-empty list"],
    ];
    for (const [json, message] of cases) {
      const file = join(dir, "p.json");
      writeFileSync(file, JSON.stringify(json));
      const out = io();
      expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, profile: file }), out)).toBe(2);
      expect(out.stderr).toEqual([expect.stringContaining(`${file}: ${message}`)]);
    }
  });

  it("calibrate checks where it will save before measuring: a missing directory or an empty name is bad input at once", async () => {
    for (const [path, reason] of [[join(tmpdir(), "meshplan-no-such-dir", "p.json"), "no such directory"], ["", "no file name"]] as const) {
      const out = io();
      // an InputError, which main.ts prints on one line with exit 2; no progress line: nothing was measured
      await expect(calibrateCommand(args("calibrate", { profile: path }), out)).rejects.toThrow(reason);
      expect(out.stderr).toEqual([]);
    }
  });

  it("a plan the executor cannot run is bad input (exit 2, one line)", async () => {
    const out = io();
    // tied embeddings on two stages under ZeRO 2: the copies' sum needs whole gradients
    const tied = join(mkdtempSync(join(tmpdir(), "meshplan-tied-")), "tiny-tied.json");
    writeFileSync(tied, JSON.stringify({ ...JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "models", "models", "tiny-gpt.json"), "utf8")), tiedEmbeddings: true }));
    expect(await executeCommand(args("execute", { model: tied, pp: 2, dp: 2, zero: 2, profile }), out)).toBe(2);
    expect(out.stderr).toHaveLength(1);
    expect(out.stderr[0]).toMatch(/^meshplan: --zero = 2 is not valid .*whole gradient.*valid: 0 or 1 for a model with tied embeddings on more than one stage/);
  });

  it("--flash is refused by name: the executor has no fused attention kernel", async () => {
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, flash: true, profile }), out)).toBe(2);
    expect(out.stderr).toEqual([expect.stringMatching(/^meshplan: --flash \(flashAttention\) = true is not valid .*no fused attention kernel.*valid: false/)]);
  });

  it("--pp-scatter-gather is refused by name: the executor's pipeline sends whole activations", async () => {
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", tp: 2, pp: 2, sp: false, "pp-scatter-gather": true, profile }), out)).toBe(2);
    expect(out.stderr).toEqual([expect.stringMatching(/^meshplan: --pp-scatter-gather \(ppScatterGather\) = true is not valid .*whole activations/)]);
  });

  it("the explorer's run (x) takes a searched plan with flash attention, runs it without, and says so", async () => {
    const model = loadModel("tiny-gpt");
    const shape = shapeOf("dgx-h100", 2);
    const plan = resolvePlan(model, shape, { dp: 2, globalBatch: 4 });
    expect(plan.flashAttention).toBe(true);
    // On the profile the first test saved (as x does with meshplan-profile.json): no calibration, and the
    // table says which profile and how old.
    const saved = { profile: JSON.parse(readFileSync(profile, "utf8")), file: profile };
    const measuredAt = Date.parse(saved.profile.measuredAt);
    const table = await executePlan(model, shape, plan, { onProgress: () => {}, saved, now: () => new Date(measuredAt + 12 * 60_000) });
    expect(table.notes?.[0]).toMatch(/flash attention off/);
    expect(table.notes?.[1]).toBe(`predicted on the profile in ${profile}, measured 12 min ago (meshplan calibrate measures it again)`);
    expect(table.rows.map((r) => r.quantity)).toEqual(expect.arrayContaining(["step time", "peak memory, worst rank (float32)"]));
    // Under the step time, the interval of its median over the 12 timed steps (the 3rd to the 10th: 0.961).
    const at = table.rows.findIndex((r) => r.quantity === "step time");
    expect(table.rows[at + 1]).toEqual({ quantity: "  step time: 96% interval", predicted: "", measured: expect.stringMatching(/^[\d.]+ ms-[\d.]+ ms$/) });
  }, 180_000);

  it("the explorer's run (x) finds a searched ZB-V plan's order again for this machine's passes, and says so", async () => {
    const model = { ...loadModel("tiny-gpt"), layers: 4 };
    const shape = shapeOf("dgx-h100", 2);
    // lengths no profile prices a layer at: the order must change
    const plan = resolvePlan(model, shape, { pp: 2, schedule: "zb-v", globalBatch: 8, flashAttention: false, vPassRatios: { backward: 8, weight: 8 } });
    const saved = { profile: JSON.parse(readFileSync(profile, "utf8")), file: profile };
    const table = await executePlan(model, shape, plan, { onProgress: () => {}, saved });
    expect(table.notes?.[0]).toMatch(/^ZB-V ran in the order found for this machine's passes \(B [\d.]+, W [\d.]+ forwards\), not the cluster's \(B 8, W 8\)$/);
  }, 180_000);

  it("warns when --profile was measured on another machine, and a saved profile of another machine is not used", async () => {
    const saved = JSON.parse(readFileSync(profile, "utf8"));
    expect(otherMachine(saved)).toBeUndefined();
    const other = { ...saved, machine: { ...saved.machine, cpus: saved.machine.cpus + 62, cpuModel: "Another CPU" } };
    expect(otherMachine(other)).toBe(`it was measured on Another CPU (${saved.machine.cpus + 62} cores), this machine is ${saved.machine.cpuModel} (${saved.machine.cpus} cores)`);
    const file = join(mkdtempSync(join(tmpdir(), "meshplan-other-")), "meshplan-profile.json");
    writeFileSync(file, JSON.stringify(other));
    // The four states execute and the explorer's x start from.
    expect(profileOnDisk(file)).toEqual({ kind: "other-machine", file, why: otherMachine(other) });
    expect(profileOnDisk(profile)).toMatchObject({ kind: "usable", file: profile, profile: { machine: saved.machine } });
    expect(profileOnDisk(join(dirname(file), "absent.json"))).toEqual({ kind: "missing", file: join(dirname(file), "absent.json") });
    const broken = join(dirname(file), "broken.json");
    writeFileSync(broken, "{ not json");
    const unreadable = profileOnDisk(broken);
    expect(unreadable.kind).toBe("unreadable");
    expect(unreadable.kind === "unreadable" ? unreadable.error.message : "").toMatch(/--profile/);
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, "global-batch": 2, profile: file, steps: 1, warmup: 0 }), out)).toBe(0);
    expect(out.stderr.join("\n")).toMatch(/warning: --profile .*: it was measured on Another CPU .*predictions use its rates/);
  }, 60_000);

  it("says when --profile was calibrated on another backend than the run's, before the run and in the report", async () => {
    const saved = JSON.parse(readFileSync(profile, "utf8"));
    const file = join(mkdtempSync(join(tmpdir(), "meshplan-backend-")), "cpu-profile.json");
    writeFileSync(file, JSON.stringify({ ...saved, backend: "cpu" }));
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, "global-batch": 2, profile: file, steps: 1, warmup: 0, json: true }), out)).toBe(0);
    expect(out.stderr.join("\n")).toContain(`execute: warning: --profile ${file} was calibrated on the cpu backend and this run uses wasm; predictions use the cpu backend's rates`);
    const r = JSON.parse(out.stdout.join("\n")) as ExecuteReport;
    expect(r.notes[0]).toBe("the profile was calibrated on the cpu backend and this run's ranks ran on wasm: the prediction uses the cpu backend's rates (meshplan calibrate --backend wasm measures this one)");
    // The speed probe's note on such a profile (the probe runs only where the ranks have a core each):
    // speed-probe.test.ts, "says when the probe compares two backends".
    // On its own backend, no such note.
    const same = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 2, "global-batch": 2, profile, steps: 1, warmup: 0, json: true }), same)).toBe(0);
    expect((JSON.parse(same.stdout.join("\n")) as ExecuteReport).notes.join("\n")).not.toMatch(/backend/);
  }, 60_000);

  it("uses a saved profile only where it was calibrated on the run's backend, else calibrates first and says why", () => {
    const saved = JSON.parse(readFileSync(profile, "utf8")) as DeviceProfile;
    const on = (backend: string) => ({ ...saved, backend });
    const usable = (backend: string) => ({ kind: "usable" as const, file: "saved.json", profile: on(backend) });
    expect(chooseSavedProfile(usable("wasm"), "wasm")).toEqual({ kind: "use", saved: { profile: on("wasm"), file: "saved.json" } });
    expect(chooseSavedProfile(usable("cpu"), "wasm")).toEqual({ kind: "calibrate", because: "saved.json was calibrated on the cpu backend and this run uses wasm" });
  });

  it("a model without a batch runs the executor's default of 8 sequences and says so; a rounded default is said too", async () => {
    // A Hugging Face config has no batch: the planner's 4M tokens would be 131,072 sequences a step.
    const dir = join(mkdtempSync(join(tmpdir(), "meshplan-hf-")), "tiny-llama");
    mkdirSync(dir);
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify({
      model_type: "llama", hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 4, vocab_size: 256, max_position_embeddings: 32, tie_word_embeddings: false, hidden_act: "silu",
    }));
    const out = io();
    expect(await executeCommand(args("execute", { model: config, profile, steps: 1, warmup: 0, json: true }), out)).toBe(0);
    const r = JSON.parse(out.stdout.join("\n")) as ExecuteReport;
    expect(r.plan.globalBatch).toBe(8);
    expect(r.notes[0]).toBe("global batch 8 sequences: tiny-llama gives none, so execute runs its default of 8 (--global-batch sets it); the planner's default, 4M tokens, would be 131,072 sequences a step");
    // tiny-gpt's 8 over dp 3 becomes 9 (it did so without a word).
    const dp3 = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", dp: 3, profile, steps: 1, warmup: 0, json: true }), dp3)).toBe(0);
    const r3 = JSON.parse(dp3.stdout.join("\n")) as ExecuteReport;
    expect(r3.plan.globalBatch).toBe(9);
    expect(r3.notes[0]).toBe("global batch 9 sequences: the default 8 rounded up to a multiple of dp x micro-batch (--global-batch sets it)");
  }, 120_000);

  it("refuses an interleaved layout it would run wrongly, without suggesting one (exit 2, before any run)", async () => {
    const out = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", pp: 2, vpp: 2, "layers-per-stage": [1, 1], profile }), out)).toBe(2);
    expect(out.stderr).toEqual([expect.stringMatching(/^meshplan: --vpp \(virtualStages\) = 2 is not valid \(the executor interleaves equal chunks of whole layers.*valid: 1 \(/)]);
    const bare = io();
    expect(await executeCommand(args("execute", { model: "tiny-gpt", pp: 2, vpp: 2, profile }), bare)).toBe(2);
    expect(bare.stderr).toHaveLength(1);
    expect(bare.stderr[0]).not.toContain("e.g. 1,1");
    expect(bare.stderr[0]).not.toContain("none splits");
  });

  it("says how old a saved profile is", () => {
    const at = "2026-11-22T10:00:00.000Z";
    const after = (minutes: number) => new Date(Date.parse(at) + minutes * 60_000);
    expect(ageOf(at, after(0))).toBe("0 min ago");
    expect(ageOf(at, after(90))).toBe("90 min ago");
    expect(ageOf(at, after(180))).toBe("3 h ago");
    expect(ageOf(at, after(3 * 24 * 60))).toBe("3 days ago");
    expect(ageOf("not a date", after(0))).toBe("at an unknown time");
  });
});
