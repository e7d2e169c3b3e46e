import { cpus } from "node:os";
import type { DeviceProfile } from "./profile.js";

/*
 * Which machine a device profile describes. Kept apart from profile.ts (which pulls in the simulator) so
 * that the explorer can check a saved profile at start without loading the executor (src/ui/executor.ts).
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
