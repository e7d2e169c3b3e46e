import { existsSync, readFileSync } from "node:fs";
import { otherBackend, otherMachine } from "../executor/measure/machine.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import { InputError } from "../spec/errors.js";
import { checkProfileFields } from "./profile-schema.js";

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
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new InputError({ code: "bad-type", file, field: "(profile)", value: json, valid: "a JSON object: a profile written by meshplan calibrate" });
  }
  const p = json as Partial<DeviceProfile>;
  if (p.version !== 1) {
    throw new InputError({ code: "bad-json", file, field: "version", value: p.version, valid: "a version 1 profile written by meshplan calibrate" });
  }
  checkProfileFields(json, file);
  return p as DeviceProfile;
}

/** A saved profile and the file it came from. */
export interface SavedProfile {
  readonly profile: DeviceProfile;
  readonly file: string;
}

/**
 * What `file` holds for this machine: a usable profile, nothing, a profile of another machine (`why`:
 * otherMachine's reason), or something that is not a profile (`error`). `execute` and the explorer's `x`
 * both start here and differ only in what they do with the last two.
 */
export type ProfileOnDisk =
  | ({ readonly kind: "usable" } & SavedProfile)
  | { readonly kind: "missing"; readonly file: string }
  | { readonly kind: "other-machine"; readonly file: string; readonly why: string }
  | { readonly kind: "unreadable"; readonly file: string; readonly error: InputError };

export function profileOnDisk(file = DEFAULT_PROFILE_FILE): ProfileOnDisk {
  if (!existsSync(file)) return { kind: "missing", file };
  let profile: DeviceProfile;
  try {
    profile = readProfile(file);
  } catch (e) {
    if (e instanceof InputError) return { kind: "unreadable", file, error: e };
    throw e;
  }
  const why = otherMachine(profile);
  return why === undefined ? { kind: "usable", profile, file } : { kind: "other-machine", file, why };
}

/** What a run predicts on: a saved profile, or a calibration first (and why), or nothing (an unreadable file). */
export type ProfileChoice =
  | { readonly kind: "use"; readonly saved: SavedProfile }
  | { readonly kind: "calibrate"; readonly because: string }
  | { readonly kind: "refuse"; readonly error: InputError };

/**
 * The choice `execute` and the explorer's `x` both make from what the disk holds, for a run on `backend`
 * (tfjs's name): the saved profile where this machine measured it on that backend; an unreadable file
 * refused; else calibrate first, saying why.
 */
export function chooseSavedProfile(disk: ProfileOnDisk, backend: string): ProfileChoice {
  switch (disk.kind) {
    case "usable": {
      const calibratedOn = otherBackend(disk.profile, backend);
      return calibratedOn === undefined
        ? { kind: "use", saved: { profile: disk.profile, file: disk.file } }
        : { kind: "calibrate", because: `${disk.file} was calibrated on the ${calibratedOn} backend and this run uses ${backend}` };
    }
    case "unreadable": return { kind: "refuse", error: disk.error };
    case "missing": return { kind: "calibrate", because: `no device profile (${disk.file})` };
    case "other-machine": return { kind: "calibrate", because: `${disk.file} does not describe this machine (${disk.why})` };
  }
}
