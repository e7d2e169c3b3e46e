import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../spec/errors.js";
import { assembleCluster, parseClusterFile, parseGpu, parseMeasuredLink } from "../spec/hardware.js";
import { checkLooksLikeHuggingFace, fromHuggingFaceConfig, isHuggingFaceConfig } from "../spec/huggingface.js";
import { parseMeasuredGpu } from "../spec/measured.js";
import { parseModel } from "../spec/model.js";
import type { ClusterSpec, GpuSpec, ModelSpec } from "../spec/types.js";

/** Built-in data lives in models/ at the package root (one folder above src/ or dist/src/). */
function findDataRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "models", "models"))) return join(dir, "models");
    dir = dirname(dir);
  }
  throw new Error("meshplan: cannot find the built-in models/ folder next to the package");
}

const ROOT = findDataRoot();
const FOLDERS = { model: join(ROOT, "models"), gpu: join(ROOT, "hardware", "gpus"), cluster: join(ROOT, "hardware", "clusters") } as const;
type Kind = keyof typeof FOLDERS;

export function builtinNames(kind: Kind): string[] {
  return readdirSync(FOLDERS[kind])
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

function looksLikePath(arg: string): boolean {
  return arg.endsWith(".json") || arg.includes("/") || arg.includes("\\");
}

/** Reads and parses a JSON file; errors name the file and what went wrong, never a stack trace. */
export function readJson(file: string, field: string, linkedFrom?: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "unreadable";
    const reason = code === "ENOENT" ? "no such file" : code;
    // A file another file names (a GPU file's measured.file): that file is where the fix goes.
    if (linkedFrom !== undefined) throw new InputError({ code: "bad-flag", file: linkedFrom, field, value: file, valid: "a readable JSON file (a path relative to this file)", reason });
    throw new InputError({ code: "bad-flag", field, value: file, valid: "a readable JSON file or a built-in name", reason });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new InputError({ code: "bad-json", file, field: "(file)", value: basename(file), valid: "well-formed JSON", reason: (e as Error).message });
  }
}

function resolveFile(kind: Kind, arg: string, field: string): { file: string; name: string } {
  if (looksLikePath(arg)) {
    const file = resolve(arg);
    const base = basename(file, ".json");
    // A Hugging Face config.json is named after its folder (e.g. .../Meta-Llama-3-8B/config.json).
    const name = base === "config" ? basename(dirname(file)) : base;
    return { file, name };
  }
  const names = builtinNames(kind);
  if (!names.includes(arg)) {
    throw new InputError({ code: "unknown-name", field, value: arg, valid: `${names.join(", ")}${kind === "model" ? ", or a path to a model JSON or Hugging Face config.json" : ", or a path to a JSON file"}` });
  }
  return { file: join(FOLDERS[kind], `${arg}.json`), name: arg };
}

export function loadModel(arg: string): ModelSpec {
  const { file, name } = resolveFile("model", arg, "--model");
  const json = readJson(file, "--model");
  checkLooksLikeHuggingFace(json, file);
  return isHuggingFaceConfig(json) ? fromHuggingFaceConfig(json, file, name) : parseModel(json, file, name);
}

/** A GPU file, with the measurement file it links (`measured.file`, relative to it) read in. */
export function loadGpu(arg: string, field = "--gpu"): GpuSpec {
  const { file, name } = resolveFile("gpu", arg, field);
  const json = readJson(file, field);
  const gpu = parseGpu(json, file, name);
  const link = parseMeasuredLink(json, file);
  if (link === undefined) return gpu;
  const measuredFile = resolve(dirname(file), link.file);
  return { ...gpu, measured: parseMeasuredGpu(readJson(measuredFile, "measured.file", file), measuredFile, link.attentionKernel) };
}

/** A cluster with its own GPU, or with `gpuOverride` swapped in (the topology is kept). */
export function loadCluster(arg: string, gpuOverride?: string): ClusterSpec {
  const { file, name } = resolveFile("cluster", arg, "--cluster");
  const parsed = parseClusterFile(readJson(file, "--cluster"), file, name);
  // A GPU the cluster file names is that file's field, not a flag the user gave.
  if (gpuOverride !== undefined) return assembleCluster(parsed, loadGpu(gpuOverride));
  try {
    return assembleCluster(parsed, loadGpu(parsed.gpuName, "gpu"));
  } catch (e) {
    throw e instanceof InputError && e.field === "gpu" && e.file === undefined ? new InputError({ code: e.code, field: "gpu", value: e.value, valid: e.valid, file, ...(e.reason === undefined ? {} : { reason: e.reason }) }) : e;
  }
}

/**
 * loadCluster by name, each read once (a validation run maps hundreds of records onto a few clusters);
 * `clusters` keeps what was loaded, for a caller that lists them afterwards.
 */
export function clusterLoader(clusters = new Map<string, ClusterSpec>()): (name: string) => ClusterSpec {
  return (name) => {
    let spec = clusters.get(name);
    if (spec === undefined) clusters.set(name, (spec = loadCluster(name)));
    return spec;
  };
}
