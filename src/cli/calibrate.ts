import { calibrateMachine } from "./calibrate-machine.js";
import { LOSS_BYTES_PER_LOGIT } from "../planner/cost/compute.js";
import { grouped } from "../math/digits.js";
import type { DeviceProfile, PassSpreads } from "../executor/measure/profile.js";
import type { SyncWaitPoint } from "../executor/measure/waits.js";
import type { ParsedArgs } from "./args.js";
import { backendFlag, extraFlag } from "./execute.js";
import { DEFAULT_PROFILE_FILE } from "./profile-file.js";
import type { Io } from "./io.js";
import { outputTarget, writeOutput } from "./output-file.js";

/** `meshplan calibrate [--profile FILE] [--backend B] [--json]`: measures this machine and saves a device profile. */
function rate(x: number, unit: string): string {
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)} G${unit}`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M${unit}`;
  return `${(x / 1e3).toFixed(2)} k${unit}`;
}

function concurrencyLine(c: NonNullable<DeviceProfile["concurrency"]>): string {
  const ms = (seconds: number) => `${(seconds * 1e3).toFixed(1)} ms`;
  const against = c.fittedSeconds === undefined ? `${ms(c.aloneSeconds)} alone` : `${ms(c.fittedSeconds)} fitted for one rank (${ms(c.aloneSeconds)} alone in a worker)`;
  return `  ${c.ranks} ranks at once: a step takes ${ms(c.concurrentSeconds)} against ${against}: x${c.slowdown.toFixed(2)}, which predictions for several ranks use`;
}

export function formatProfile(p: DeviceProfile, file: string): string {
  const lines = [
    `device profile of ${p.machine.cpuModel} (${p.machine.cpus} cores), TensorFlow.js ${p.backend}, Node ${p.machine.node} -> ${file}`,
    "  matrix multiply (float32, one rank):",
    ...p.matmul.map((m) => `    ${String(m.n).padStart(4)}^3   ${(m.seconds * 1e6).toFixed(1).padStart(9)} us   ${rate(m.flopsPerSecond, "FLOP/s")}`),
    `  memcpy (one thread, 64 MiB)      ${rate(p.memcpyBytesPerSecond, "B/s")}`,
    ...(p.optimizerBytesPerSecond === undefined ? [] : [`  optimizer step (Adam, float32)   ${rate(p.optimizerBytesPerSecond, "B/s")} (the cost model's 30 bytes per parameter)`]),
    ...(p.loss === undefined ? [] : [`  cross-entropy (float32)          ${rate(p.loss.bytesPerSecond, "B/s")} (the cost model's ${LOSS_BYTES_PER_LOGIT} bytes per logit each way) and ${(p.loss.overheadSeconds * 1e6).toFixed(1)} us per pass`]),
    ...(p.embedding === undefined ? [] : [`  input embedding (float32)        ${rate(p.embedding.bytesPerSecond, "B/s")} (the cost model's bytes: rows forward, the table's gradient backward) and ${(p.embedding.overheadSeconds * 1e6).toFixed(1)} us per pass`]),
    ...(p.moeRouting === undefined ? [] : [`  experts' routing (float32)       ${rate(p.moeRouting.bytesPerSecond, "B/s")} (the cost model's bytes: softmax, dispatch and combine) and ${(p.moeRouting.overheadSeconds * 1e6).toFixed(1)} us per pass`]),
    ...(p.weightFirstUse === undefined ? [] : [
      `  new weights' first use (one layer's forward, new tensors against used ones): ${p.weightFirstUse.measured.map((m) => `${(m.seconds * 1e3).toFixed(3)} ms (${m.shape}, ${grouped(m.params)} weights)`).join(", ")}: ${(p.weightFirstUse.secondsPerParam * 1e9).toFixed(2)} ns per weight, paid by each chunk's first forward of a step`,
    ]),
    `  all-reduce, 2 ranks, shared memory: ${rate(p.collectiveBytesPerSecond, "B/s")} bus bandwidth, ${(p.collectiveLatencySeconds * 1e6).toFixed(1)} us per step`,
    `  fitted: ${(p.opOverheadSeconds * 1e6).toFixed(1)} us per GEMM of the cost model, element-wise rate ${rate(p.elementwiseBytesPerSecond, "B/s")} (16-bit bytes)`,
    ...p.fit.map((f) => `    ${f.shape.padEnd(14)} step measured ${(f.measuredSeconds * 1e3).toFixed(1)} ms, fitted ${(f.fittedSeconds * 1e3).toFixed(1)} ms`),
    ...(p.concurrency === undefined ? [] : [concurrencyLine(p.concurrency)]),
    ...(p.passJitter === undefined ? [] : [spreadLine(p.passJitter, `every core busy (${p.passJitter.shape}, ${p.passJitter.samples} passes)`)]),
    ...(p.passJitter?.fewerRanks === undefined ? [] : [spreadLine(p.passJitter.fewerRanks, `${p.passJitter.fewerRanks.ranks} ranks at once (${p.passJitter.fewerRanks.samples} passes)`)]),
    ...(p.syncWaits === undefined ? [] : [waitsLine(p.syncWaits.members, p.syncWaits.ranks, p.syncWaits.points)]),
    ...(p.syncWaits?.fewerRanks === undefined ? [] : [waitsLine(p.syncWaits.members, p.syncWaits.fewerRanks.ranks, p.syncWaits.fewerRanks.points)]),
  ];
  return lines.join("\n");
}

function spreadLine(s: PassSpreads, when: string): string {
  return `  pass times with ${when}: log-sd ${s.forward.logSd.toFixed(3)} for forwards of ${(s.forward.meanSeconds * 1e3).toFixed(2)} ms, ${s.backward.logSd.toFixed(3)} for backwards of ${(s.backward.meanSeconds * 1e3).toFixed(2)} ms (pipeline predictions simulate it)`;
}

function waitsLine(members: number, ranks: number, points: readonly SyncWaitPoint[]): string {
  return `  waits at a collective of ${members} with ${ranks} ranks busy: ${points.map((x) => `${(x.waitSeconds * 1e3).toFixed(3)} ms after ${(x.segmentSeconds * 1e3).toFixed(2)} ms${x.group === undefined ? "" : ` (${x.group})`}`).join(", ")} (tp, cp, ep and dp predictions add them)`;
}

export async function calibrateCommand(args: ParsedArgs, io: Io): Promise<number> {
  // bad input (InputError) reaches run() in main.ts, which prints it on one line and returns 2
  const given = extraFlag(args, "profile");
  const file = given === undefined ? DEFAULT_PROFILE_FILE : given;
  // Checked before the minute of measuring; written through a temporary file renamed into place, so an
  // interrupted write never leaves half a profile (output-file.ts).
  const target = outputTarget("--profile", file);
  const profile = await calibrateMachine(backendFlag(args), (what) => io.err(`calibrate: ${what}`));
  writeOutput(target, [`${JSON.stringify(profile, null, 2)}\n`]);
  io.out(args.flags.json === true ? JSON.stringify(profile, null, 2) : formatProfile(profile, target.given));
  return 0;
}
