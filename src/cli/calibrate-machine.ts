import { calibrate } from "../executor/measure/calibrate.js";
import type { DeviceProfile } from "../executor/measure/profile.js";
import type { BackendChoice } from "../executor/run/backend.js";
import { loadModel } from "./catalog.js";

/**
 * Measures this machine's device profile on `backend`: what `meshplan calibrate` saves, and what `execute`
 * and the explorer's `x` measure where they find none. The fitted GPTs take tiny-gpt
 * (models/models/tiny-gpt.json) as their base, whatever model is run next, so that one profile serves every
 * model the executor runs, as a saved one does. The explorer imports this module only when `x` needs it
 * (src/ui/run-job.ts): it loads the executor.
 */
export function calibrateMachine(backend: BackendChoice, onProgress?: (what: string) => void): Promise<DeviceProfile> {
  return calibrate({ backend, base: loadModel("tiny-gpt"), ...(onProgress === undefined ? {} : { onProgress }) });
}
