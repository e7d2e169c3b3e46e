import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { builtinNames, loadCluster, loadGpu, loadModel } from "../../src/cli/catalog.js";

const DATA = join(import.meta.dirname, "..", "..", "models");

/** Every numeric leaf of a JSON object, as dotted paths. */
function numericPaths(value: unknown, prefix = ""): string[] {
  if (typeof value === "number") return [prefix];
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => (k === "sources" ? [] : numericPaths(v, prefix === "" ? k : `${prefix}.${k}`)));
}

describe("built-in data", () => {
  it("every model, GPU and cluster file loads and validates", () => {
    for (const name of builtinNames("model")) expect(loadModel(name).name).toBe(name);
    for (const name of builtinNames("gpu")) expect(loadGpu(name).name).toBe(name);
    for (const name of builtinNames("cluster")) expect(loadCluster(name).name).toBe(name);
  });

  it("every hardware figure names its source (a datasheet, a paper or a recorded measurement)", () => {
    for (const [kind, folder] of [["gpu", "hardware/gpus"], ["cluster", "hardware/clusters"]] as const) {
      for (const name of builtinNames(kind)) {
        const json = JSON.parse(readFileSync(join(DATA, folder, `${name}.json`), "utf8")) as { sources: Record<string, string> };
        for (const path of numericPaths(json)) {
          // A figure is covered by its own key or by its parent's (peakFlopsPerSecond covers each precision).
          const covered = Object.keys(json.sources).some((k) => path === k || path.startsWith(`${k}.`));
          expect(covered, `${folder}/${name}.json: ${path} has no source`).toBe(true);
        }
        for (const text of Object.values(json.sources)) expect(text.length).toBeGreaterThan(20);
      }
    }
  });

  it("every model names its source", () => {
    for (const name of builtinNames("model")) expect(loadModel(name).source.length, name).toBeGreaterThan(10);
  });

  it("the peaks of the reference datasheet table (../shared/reference/hardware.md) are the ones in the files", () => {
    const dense16 = (name: string) => loadGpu(name).peakFlopsPerSecond.bf16 ?? loadGpu(name).peakFlopsPerSecond.fp16!;
    const table: [string, number, number][] = [
      ["v100-sxm-32gb", 125e12, 900e9],
      ["a100-sxm-40gb", 312e12, 1555e9],
      ["a100-sxm-80gb", 312e12, 2039e9],
      ["h100-sxm", 989e12, 3.35e12],
      ["h100-pcie", 756e12, 2.0e12],
      ["h200-sxm", 989e12, 4.8e12],
      ["b200", 2250e12, 7.7e12],
      ["mi300x", 1307e12, 5.3e12],
    ];
    for (const [name, flops, hbm] of table) {
      expect(Math.abs(dense16(name) - flops) / flops, name).toBeLessThan(0.005);
      expect(Math.abs(loadGpu(name).hbmBytesPerSecond - hbm) / hbm, name).toBeLessThan(0.04); // B200: 7.7 to 8 TB/s
    }
  });
});
