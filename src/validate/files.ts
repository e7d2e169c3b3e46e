import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCalibration, type CalibrationFile } from "./calibration.js";
import { parseRecords, RecordError, type MeasurementRecord } from "./records.js";

/**
 * The one module of src/validate that touches the file system, used by `meshplan validate` and by the
 * calibration script: it finds models/ at the package root (as src/cli/catalog.ts does) and reads text.
 * Everything else here is pure.
 */
export function findModelsRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "models", "measurements"))) return join(dir, "models");
    dir = dirname(dir);
  }
  throw new Error("meshplan: cannot find the built-in models/ folder next to the package");
}

export const MEASUREMENTS_DIR = () => join(findModelsRoot(), "measurements");
export const CALIBRATION_FILE = () => join(findModelsRoot(), "hardware", "calibration.json");

/** Every record of every models/measurements/*.jsonl, files in name order. Throws RecordError on bad data. */
export function readMeasurements(dir: string = MEASUREMENTS_DIR()): MeasurementRecord[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort();
  } catch (e) {
    throw new RecordError(dir, 0, `cannot read the folder (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (names.length === 0) throw new RecordError(dir, 0, "no .jsonl files");
  return names.flatMap((name) => parseRecords(readFileSync(join(dir, name), "utf8"), name.slice(0, -".jsonl".length), join(dir, name)));
}

/** The calibration layer, parsed, or undefined when the file does not exist; throws when it cannot be read. */
export function readCalibration(file: string = CALIBRATION_FILE()): CalibrationFile | undefined {
  const json = readCalibrationJson(file);
  return json === undefined ? undefined : parseCalibration(json, file);
}

/** The calibration layer's JSON, or undefined when the file does not exist. */
export function readCalibrationJson(file: string = CALIBRATION_FILE()): unknown {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as unknown;
}
