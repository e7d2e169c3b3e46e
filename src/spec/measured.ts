import { median } from "../math/median.js";
import { ALIGNED_16BIT_ELEMENTS, headDimAligned } from "./alignment.js";
import { InputError } from "./errors.js";
import { FieldReader, POSITIVE } from "./read.js";
import type { GemmGrid, MeasuredAttention, MeasuredGpu, MeasuredMisalignedAttention } from "./types.js";

/**
 * Reads a GPU's measurement file (models/hardware/measured/*.json, as scripts/gpu/measure.py writes it):
 * the GEMM grids whole (every m, k, n combination, else an error naming the missing point), the named
 * attention kernel's rows, the element-wise add's bandwidth and, where measured, the unfused attention's
 * products at misaligned head dimensions, each reduced to the median over the script's passes.
 */
export function parseMeasuredGpu(json: unknown, file: string, attentionKernel: string | undefined): MeasuredGpu {
  const r = FieldReader.of(json, file);
  const d = r.child("device");
  return {
    file,
    device: `${d.string("name")}, driver ${String(d.raw("nvidiaSmi") ?? "?").split(",")[1]?.trim() ?? "?"}, CUDA ${d.string("cuda")}, PyTorch ${d.string("torch")}`,
    gemm16: parseGrid(r.child("gemmBf16"), file),
    gemmFp8: r.has("gemmFp8") ? parseGrid(r.child("gemmFp8"), file) : undefined,
    attention: attentionKernel === undefined ? undefined : parseAttention(r.child("attention"), file, attentionKernel),
    streamBytesPerSecond: r.has("memory") ? streamBandwidth(r.child("memory"), file) : undefined,
    misalignedAttention: r.has("attentionAlignment") ? misalignedAttention(r.child("attentionAlignment"), file) : undefined,
  };
}

/**
 * From 4096 up in every dimension the measured H100 and H200 grids are flat within their noise (0.65-0.75 of
 * the bf16 peak at every point, models/hardware/measured); below it, efficiency falls with the size.
 */
export const PLATEAU_MIN_DIM = 4096;

function rows(r: FieldReader, key: string): FieldReader[] {
  const raw = r.raw(key);
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InputError({ code: "bad-type", file: r.file, field: r.path(key), value: raw, valid: "a non-empty array" });
  }
  return raw.map((row, i) => FieldReader.of(row, r.file, `${r.path(key)}[${i}]`));
}

function parseGrid(r: FieldReader, file: string): GemmGrid {
  const raw = r.raw("points");
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new InputError({ code: "bad-type", file, field: r.path("points"), value: raw, valid: "a non-empty array of [m, k, n, seconds, ...]" });
  }
  const seconds = new Map<string, number>();
  const axes = [new Set<number>(), new Set<number>(), new Set<number>()];
  raw.forEach((p: unknown, i) => {
    const ok = Array.isArray(p) && p.length >= 4 && p.slice(0, 4).every((x) => typeof x === "number" && x > 0 && Number.isFinite(x));
    if (!ok) throw new InputError({ code: "bad-type", file, field: `${r.path("points")}[${i}]`, value: p, valid: "[m, k, n, seconds, ...], all positive numbers" });
    const [m, k, n, s] = p as number[];
    axes[0]!.add(m!);
    axes[1]!.add(k!);
    axes[2]!.add(n!);
    seconds.set(`${m},${k},${n}`, s!);
  });
  const [m, k, n] = axes.map((a) => [...a].sort((x, y) => x - y)) as [number[], number[], number[]];
  const flat: number[] = [];
  const plateau: number[] = [];
  for (const a of m) {
    for (const b of k) {
      for (const c of n) {
        const s = seconds.get(`${a},${b},${c}`);
        if (s === undefined) throw new InputError({ code: "missing-field", file, field: r.path("points"), value: `m ${a}, k ${b}, n ${c}`, valid: "every combination of the grid's m, k and n values" });
        flat.push(s);
        if (a >= PLATEAU_MIN_DIM && b >= PLATEAU_MIN_DIM && c >= PLATEAU_MIN_DIM) plateau.push((2 * a * b * c) / s);
      }
    }
  }
  if (plateau.length === 0) throw new InputError({ code: "missing-field", file, field: r.path("points"), value: raw.length, valid: `points with m, k and n all ${PLATEAU_MIN_DIM} or more (the plateau)` });
  return { m, k, n, seconds: flat, plateauFlopsPerSecond: median(plateau) };
}

function parseAttention(r: FieldReader, file: string, kernel: string): MeasuredAttention {
  const byKey = new Map<string, { flops: number; seconds: number[] }>();
  for (const row of rows(r, "rows")) {
    if (row.string("kernel") !== kernel || row.has("error")) continue;
    const key = `${row.boolean("causal")},${row.number("seqLen", POSITIVE)}`;
    const flops = row.number("forwardFlops", POSITIVE);
    const entry = byKey.get(key) ?? { flops, seconds: [] };
    entry.seconds.push(row.number("forwardSeconds", POSITIVE) + row.number("backwardSeconds", POSITIVE));
    byKey.set(key, entry);
  }
  const lengths = [...new Set([...byKey.keys()].map((k) => Number(k.split(",")[1])))].sort((a, b) => a - b);
  const rate = (causal: boolean) =>
    lengths.map((l) => {
      const e = byKey.get(`${causal},${l}`);
      if (e === undefined) throw new InputError({ code: "missing-field", file, field: r.path("rows"), value: `${kernel} causal ${causal} seqLen ${l}`, valid: "causal and unmasked rows at every length" });
      return e.flops / median(e.seconds);
    });
  if (lengths.length < 2) throw new InputError({ code: "missing-field", file, field: r.path("rows"), value: kernel, valid: "rows of that kernel at two lengths or more" });
  return { kernel, lengths, causalFlopsPerSecond: rate(true), unmaskedFlopsPerSecond: rate(false) };
}

/** Buffers this large are far past the 50 MB L2 of an H100 (and any GPU's L2 so far): HBM bandwidth. */
const STREAM_MIN_BYTES = 256 * 2 ** 20;

function streamBandwidth(r: FieldReader, file: string): number {
  const rates = rows(r, "rows")
    .filter((row) => row.string("op") === "add" && row.number("bufferBytes", POSITIVE) >= STREAM_MIN_BYTES)
    .map((row) => row.number("bytesMoved", POSITIVE) / row.number("seconds", POSITIVE));
  if (rates.length === 0) throw new InputError({ code: "missing-field", file, field: r.path("rows"), value: "add", valid: `'add' rows over buffers of ${STREAM_MIN_BYTES} bytes or more` });
  return median(rates);
}

/**
 * The alignment section's bf16 rows at head dimensions that are not multiples of 8: forward FLOPs times 3
 * (the backward's two products per forward product) over forward plus backward seconds, median over passes.
 */
function misalignedAttention(r: FieldReader, file: string): MeasuredMisalignedAttention {
  const byDim = new Map<number, number[]>();
  for (const row of rows(r, "rows")) {
    const headDim = row.number("headDim", POSITIVE);
    if (row.string("dtype") !== "bfloat16" || headDimAligned(headDim)) continue;
    const seconds = row.number("forwardSeconds", POSITIVE) + row.number("backwardSeconds", POSITIVE);
    byDim.set(headDim, [...(byDim.get(headDim) ?? []), (3 * row.number("forwardFlops", POSITIVE)) / seconds]);
  }
  const headDims = [...byDim.keys()].sort((a, b) => a - b);
  if (headDims.length === 0) throw new InputError({ code: "missing-field", file, field: r.path("rows"), value: "none", valid: `bfloat16 rows at a head dimension that is not a multiple of ${ALIGNED_16BIT_ELEMENTS}` });
  return { headDims, flopsPerSecond: headDims.map((d) => median(byDim.get(d)!)) };
}
