/**
 * The published measured runs of models/measurements/*.jsonl (schema: models/measurements/README.md).
 * Values are kept exactly as published: a field the source does not give is null. Parsing is pure: the
 * caller (the CLI, the calibration script) reads the files and hands over their text.
 */
export interface RecordModel {
  readonly name: string;
  readonly family: string | null;
  readonly params_b: number | null;
  readonly layers: number | null;
  readonly hidden: number | null;
  readonly heads: number | null;
  readonly kv_heads: number | null;
  readonly ffn: number | null;
  readonly vocab: number | null;
  readonly seq_len: number | null;
}

export interface RecordHardware {
  readonly gpu: string | null;
  readonly num_gpus: number | null;
  readonly gpus_per_node: number | null;
  /** The named machine (e.g. "Jean Zay"), where the source gives one. */
  readonly system: string | null;
}

export interface RecordParallel {
  readonly tp: number | null;
  readonly pp: number | null;
  readonly dp: number | null;
  readonly cp: number | null;
  readonly ep: number | null;
  readonly sequence_parallel: boolean | null;
  readonly vpp: number | null;
  readonly micro_batch_size: number | null;
  readonly global_batch_size: number | null;
  readonly global_batch_tokens: number | null;
  readonly zero_stage: number | null;
  readonly fsdp: string | null;
  readonly recompute: string | null;
  readonly precision: string | null;
  readonly other: string | null;
}

export interface RecordMeasured {
  readonly tflops_per_gpu: number | null;
  readonly tflops_kind: string | null;
  readonly mfu_pct: number | null;
  readonly hfu_pct: number | null;
  readonly tokens_per_sec_per_gpu: number | null;
  readonly tokens_per_sec_total: number | null;
  readonly iteration_time_s: number | null;
  readonly memory_per_gpu_gib: number | null;
  /** As published in "GB" (BLOOM: nvidia-smi); treated as 10^9 bytes. */
  readonly memory_per_gpu_gb: number | null;
  readonly oom?: boolean;
  /** The numbers of `measured.other`: figures outside the throughput columns (per-layer times, memory parts). */
  readonly other: Readonly<Record<string, number>>;
}

export interface MeasurementRecord {
  readonly id: string;
  /** The file the record came from, without `.jsonl`: the unit the calibration holds out. */
  readonly source: string;
  readonly publication: string;
  /** The table or figure of the publication the record was read from (source.table_or_figure). */
  readonly table?: string;
  readonly model: RecordModel;
  readonly hardware: RecordHardware;
  readonly parallel: RecordParallel;
  readonly measured: RecordMeasured;
  readonly notes: string | null;
}

/** A file that is not the schema: names the file, the line and what is wrong. */
export class RecordError extends Error {
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
    this.name = "RecordError";
  }
}

function object(value: unknown, file: string, line: number, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RecordError(file, line, `${field} is not an object`);
  }
  return value as Record<string, unknown>;
}

function num(o: Record<string, unknown>, key: string): number | null {
  const v = o[key];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function str(o: Record<string, unknown>, key: string): string | null {
  const v = o[key];
  return typeof v === "string" ? v : null;
}

function numbersOf(value: unknown): Record<string, number> {
  if (typeof value !== "object" || value === null) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1])));
}

function parseOne(json: unknown, source: string, file: string, line: number): MeasurementRecord {
  const r = object(json, file, line, "record");
  const id = str(r, "id");
  if (id === null) throw new RecordError(file, line, "id is missing");
  const m = object(r.model, file, line, "model");
  const h = object(r.hardware, file, line, "hardware");
  const p = object(r.parallel, file, line, "parallel");
  const x = object(r.measured, file, line, "measured");
  const s = object(r.source, file, line, "source");
  const sp = p.sequence_parallel;
  const table = str(s, "table_or_figure");
  return {
    id,
    source,
    publication: str(s, "publication") ?? "",
    ...(table === null ? {} : { table }),
    model: {
      name: str(m, "name") ?? id, family: str(m, "family"), params_b: num(m, "params_b"), layers: num(m, "layers"),
      hidden: num(m, "hidden"), heads: num(m, "heads"), kv_heads: num(m, "kv_heads"), ffn: num(m, "ffn"),
      vocab: num(m, "vocab"), seq_len: num(m, "seq_len"),
    },
    hardware: { gpu: str(h, "gpu"), num_gpus: num(h, "num_gpus"), gpus_per_node: num(h, "gpus_per_node"), system: str(h, "system") },
    parallel: {
      tp: num(p, "tp"), pp: num(p, "pp"), dp: num(p, "dp"), cp: num(p, "cp"), ep: num(p, "ep"),
      sequence_parallel: typeof sp === "boolean" ? sp : null, vpp: num(p, "vpp"),
      micro_batch_size: num(p, "micro_batch_size"), global_batch_size: num(p, "global_batch_size"),
      global_batch_tokens: num(p, "global_batch_tokens"), zero_stage: num(p, "zero_stage"), fsdp: str(p, "fsdp"),
      recompute: str(p, "recompute"), precision: str(p, "precision"), other: str(p, "other"),
    },
    measured: {
      tflops_per_gpu: num(x, "tflops_per_gpu"), tflops_kind: str(x, "tflops_kind"), mfu_pct: num(x, "mfu_pct"),
      hfu_pct: num(x, "hfu_pct"), tokens_per_sec_per_gpu: num(x, "tokens_per_sec_per_gpu"),
      tokens_per_sec_total: num(x, "tokens_per_sec_total"), iteration_time_s: num(x, "iteration_time_s"),
      memory_per_gpu_gib: num(x, "memory_per_gpu_gib"), memory_per_gpu_gb: num(x, "memory_per_gpu_gb"),
      ...(x.oom === true ? { oom: true } : {}),
      other: numbersOf(x.other),
    },
    notes: str(r, "notes"),
  };
}

/** Parses one JSON-lines file; `source` is its name without `.jsonl`. Throws RecordError on a bad line. */
export function parseRecords(text: string, source: string, file = `${source}.jsonl`): MeasurementRecord[] {
  const out: MeasurementRecord[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new RecordError(file, i + 1, `not JSON (${(e as Error).message})`);
    }
    out.push(parseOne(json, source, file, i + 1));
  });
  return out;
}
