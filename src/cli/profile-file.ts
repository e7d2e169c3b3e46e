import { existsSync, readFileSync } from "node:fs";
import { otherMachine } from "../executor/measure/machine.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import { InputError } from "../spec/errors.js";

/** Where `meshplan calibrate` saves this machine's device profile, and `execute` and the explorer's `x` read it. */
export const DEFAULT_PROFILE_FILE = "meshplan-profile.json";

/** Reads a device profile written by `meshplan calibrate`; bad files are an InputError naming --profile. */
export function readProfile(file: string): DeviceProfile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new InputError({ code: "bad-json", field: "--profile", value: file, valid: "a profile written by meshplan calibrate", reason: (e as Error).message });
  }
  const p = json as Partial<DeviceProfile>;
  if (p.version !== 1 || typeof p.peakFlopsPerSecond !== "number" || typeof p.opOverheadSeconds !== "number") {
    throw new InputError({ code: "bad-json", file, field: "version", value: p.version, valid: "a version 1 profile written by meshplan calibrate" });
  }
  return p as DeviceProfile;
}

/** A saved profile and the file it came from. */
export interface SavedProfile {
  readonly profile: DeviceProfile;
  readonly file: string;
}

/**
 * The profile saved in `file` for this machine, or undefined where there is none, it cannot be read as one,
 * or it was measured on another machine (otherMachine).
 */
export function savedProfile(file = DEFAULT_PROFILE_FILE): SavedProfile | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const profile = readProfile(file);
    return otherMachine(profile) === undefined ? { profile, file } : undefined;
  } catch {
    return undefined;
  }
}
