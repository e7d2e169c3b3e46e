import { InputError } from "./errors.js";
import { FieldReader, FRACTION, POSITIVE, POSITIVE_INT } from "./read.js";
import { PRECISIONS, type ClusterSpec, type GpuSpec, type LinkSpec, type Precision } from "./types.js";

export function parseGpu(json: unknown, file: string, fallbackName: string): GpuSpec {
  const r = FieldReader.of(json, file);
  const name = r.optionalString("name") ?? fallbackName;
  const peaksReader = r.child("peakFlopsPerSecond");
  const peakFlopsPerSecond: Partial<Record<Precision, number>> = {};
  for (const precision of PRECISIONS) {
    const value = peaksReader.optionalNumber(precision, POSITIVE);
    if (value !== undefined) peakFlopsPerSecond[precision] = value;
  }
  peaksReader.rejectUnread();
  if (Object.keys(peakFlopsPerSecond).length === 0) {
    throw new InputError({
      code: "missing-field", file, field: "peakFlopsPerSecond", value: r.raw("peakFlopsPerSecond"),
      valid: `at least one of ${PRECISIONS.join(", ")}`,
    });
  }
  const eff = r.child("efficiency");
  const commOverlapSlowdown = eff.optionalNumber("commOverlapSlowdown", FRACTION);
  const gpu: GpuSpec = {
    name,
    displayName: r.optionalString("displayName") ?? name,
    memoryBytes: r.number("memoryBytes", POSITIVE),
    hbmBytesPerSecond: r.number("hbmBytesPerSecond", POSITIVE),
    peakFlopsPerSecond,
    nvlinkBytesPerSecond: r.number("nvlinkBytesPerSecond", { min: 0 }),
    efficiency: {
      matmulMax: eff.number("matmulMax", FRACTION),
      matmulOverheadSeconds: eff.number("matmulOverheadSeconds", { min: 0 }),
      attentionMax: eff.number("attentionMax", FRACTION),
      memoryBandwidth: eff.number("memoryBandwidth", FRACTION),
      ...(commOverlapSlowdown === undefined ? {} : { commOverlapSlowdown }),
    },
    runtimeReserveBytes: r.number("runtimeReserveBytes", { min: 0 }),
    sources: parseSources(r),
  };
  eff.rejectUnread();
  r.rejectUnread(["measured"]);
  if (gpu.runtimeReserveBytes >= gpu.memoryBytes) {
    throw new InputError({
      code: "out-of-range", file, field: "runtimeReserveBytes", value: gpu.runtimeReserveBytes,
      valid: `below memoryBytes (${gpu.memoryBytes}); a few GB at most`, reason: "the reserve (context, libraries, communication buffers) is a part of the GPU's memory",
    });
  }
  return gpu;
}

/** A GPU file's `measured`: the measurement file (relative to the GPU file) and the attention kernel to read from it. */
export interface MeasuredLink {
  readonly file: string;
  readonly attentionKernel: string | undefined;
}

export function parseMeasuredLink(json: unknown, file: string): MeasuredLink | undefined {
  const r = FieldReader.of(json, file);
  if (!r.has("measured")) return undefined;
  const m = r.child("measured");
  const link = { file: m.string("file"), attentionKernel: m.optionalString("attentionKernel") };
  m.rejectUnread();
  return link;
}

/** A cluster file names its GPU; the caller resolves that name (or a `--gpu` override) to a GpuSpec. */
export interface ClusterFile {
  readonly name: string;
  readonly displayName: string;
  readonly gpuName: string;
  readonly gpusPerNode: number;
  readonly intraNode: LinkSpec;
  readonly interNode: LinkSpec;
  readonly sources: Readonly<Record<string, string>>;
}

export function parseClusterFile(json: unknown, file: string, fallbackName: string): ClusterFile {
  const r = FieldReader.of(json, file);
  const name = r.optionalString("name") ?? fallbackName;
  const cluster: ClusterFile = {
    name,
    displayName: r.optionalString("displayName") ?? name,
    gpuName: r.string("gpu"),
    gpusPerNode: r.number("gpusPerNode", POSITIVE_INT),
    intraNode: parseLink(r.child("intraNode"), false),
    interNode: parseLink(r.child("interNode"), true),
    sources: parseSources(r),
  };
  r.rejectUnread();
  return cluster;
}

export function assembleCluster(file: ClusterFile, gpu: GpuSpec): ClusterSpec {
  return {
    name: file.name,
    displayName: file.displayName,
    gpu,
    gpusPerNode: file.gpusPerNode,
    intraNode: file.intraNode,
    interNode: file.interNode,
    sources: file.sources,
  };
}

function parseLink(r: FieldReader, interNode: boolean): LinkSpec {
  // A cap on one group's line rate describes how NCCL crosses nodes; inside a node it would mean nothing.
  if (!interNode && r.has("maxBytesPerSecondPerGroup")) {
    throw new InputError({ code: "out-of-range", file: r.file, field: r.path("maxBytesPerSecondPerGroup"), value: r.raw("maxBytesPerSecondPerGroup"), valid: "absent: it applies to interNode only" });
  }
  const link: LinkSpec = {
    link: r.string("link"),
    bytesPerSecondPerGpu: r.number("bytesPerSecondPerGpu", POSITIVE),
    latencySeconds: r.number("latencySeconds", { min: 0 }),
    busBandwidthEfficiency: r.number("busBandwidthEfficiency", FRACTION),
    ...(r.has("maxBytesPerSecondPerGroup") ? { maxBytesPerSecondPerGroup: r.number("maxBytesPerSecondPerGroup", POSITIVE) } : {}),
  };
  r.rejectUnread();
  return link;
}

function parseSources(r: FieldReader): Record<string, string> {
  if (!r.has("sources")) return {};
  const s = r.child("sources");
  const out: Record<string, string> = {};
  const raw = r.raw("sources") as Record<string, unknown>;
  for (const key of Object.keys(raw)) out[key] = s.string(key);
  return out;
}
