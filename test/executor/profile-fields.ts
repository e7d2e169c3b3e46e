import { checkProfileFields } from "../../src/cli/profile-schema.js";
import type { DeviceProfile } from "../../src/executor/measure/profile.js";
import { InputError } from "../../src/spec/errors.js";

/**
 * What reading a profile says of `base` (given a one-shape fit) with `section` set to `value`: "accepted",
 * the input error's message, or a line saying the error was of another kind.
 */
export function profileSectionVerdict(base: DeviceProfile, section: string, value: unknown): string {
  const fit = [{ shape: "h64 s32 L2", measuredSeconds: 0.05, fittedSeconds: 0.05 }];
  try {
    checkProfileFields(JSON.parse(JSON.stringify({ ...base, fit, [section]: value })), "p.json");
  } catch (e) {
    return e instanceof InputError ? e.message : `not an input error: ${String(e)}`;
  }
  return "accepted";
}
