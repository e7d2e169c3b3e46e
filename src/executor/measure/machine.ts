import { cpus } from "node:os";
import type { DeviceProfile } from "./profile.js";

/*
 * Which machine, and which backend, a device profile describes. Kept apart from profile.ts (which pulls in
 * the simulator) so that the explorer can check a saved profile at start without loading the executor
 * (src/ui/executor.ts).
 */

/** This machine as `meshplan calibrate` records it in DeviceProfile.machine. */
export function thisMachine(): DeviceProfile["machine"] {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? "unknown", node: process.version, platform: process.platform };
}

/**
 * Why `p` does not describe the machine `here` (another CPU model or core count: its rates and its
 * slowdown with every core busy are another machine's), or undefined when it does.
 */
export function otherMachine(p: DeviceProfile, here: DeviceProfile["machine"] = thisMachine()): string | undefined {
  const m = p.machine;
  if (m.cpus === here.cpus && m.cpuModel === here.cpuModel) return undefined;
  return `it was measured on ${m.cpuModel} (${m.cpus} cores), this machine is ${here.cpuModel} (${here.cpus} cores)`;
}

/**
 * The backend `p` was calibrated on (tfjs's name) where it is not `runs`, the one a run uses (its rates are
 * that backend's), or undefined when they are the same. The one place this is decided, for execute's warning
 * about --profile, its choice of the saved profile (cli/profile-file.ts chooseSavedProfile) and the report's
 * note (profile.ts predictForRun).
 */
export function otherBackend(p: DeviceProfile, runs: string): string | undefined {
  return p.backend === runs ? undefined : p.backend;
}

/** CPU time at one moment: every core's busy and total milliseconds (os.cpus) and this process's own. */
export interface CpuSnapshot {
  readonly machineBusyMs: number;
  readonly machineTotalMs: number;
  /** User and system time of this process, all its threads (the ranks are worker threads of it). */
  readonly processMs: number;
}

export function cpuSnapshot(): CpuSnapshot {
  let busy = 0;
  let all = 0;
  for (const c of cpus()) {
    const t = c.times;
    busy += t.user + t.nice + t.sys + t.irq;
    all += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  const own = process.cpuUsage();
  return { machineBusyMs: busy, machineTotalMs: all, processMs: (own.user + own.system) / 1e3 };
}

/**
 * The share of the machine's cores that other processes kept busy between two snapshots: the machine's
 * busy time less this process's, over the machine's total, in [0, 1]; undefined when no time passed.
 */
export function otherWorkShare(before: CpuSnapshot, after: CpuSnapshot): number | undefined {
  const total = after.machineTotalMs - before.machineTotalMs;
  if (!(total > 0)) return undefined;
  const other = after.machineBusyMs - before.machineBusyMs - (after.processMs - before.processMs);
  return Math.min(1, Math.max(0, other / total));
}
