import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Whether a module beside this one exists as a file: true in the built package (dist/, where workers and
 * the executor's entry are compiled .js), false when the UI runs from its TypeScript sources under test.
 */
export function builtFileExists(url: URL): boolean {
  return url.protocol === "file:" && existsSync(fileURLToPath(url));
}
