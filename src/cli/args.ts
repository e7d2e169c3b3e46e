import { InputError } from "../spec/errors.js";
import type { PlanInput } from "../spec/plan.js";
import { EXECUTE_DEFAULT_GLOBAL_BATCH } from "../executor/measure/fit-plan.js";

/** The command line's vocabulary (design brief section 5). Adding is fine; renaming is not. */
type FlagType = "int" | "number" | "string" | "bool" | "list";

interface FlagSpec {
  readonly type: FlagType;
  readonly help: string;
  readonly valueName?: string;
}

export const FLAGS = {
  model: { type: "string", help: "built-in model name, a meshplan model JSON or a Hugging Face config.json (default llama3-70b)", valueName: "NAME|FILE" },
  gpus: { type: "int", help: "total GPUs (default 64)", valueName: "N" },
  cluster: { type: "string", help: "built-in cluster or cluster JSON (default dgx-h100)", valueName: "NAME|FILE" },
  gpu: { type: "string", help: "swap the cluster's GPU, keeping its topology", valueName: "NAME|FILE" },
  "gpus-per-node": { type: "int", help: "override the cluster's GPUs per node", valueName: "N" },
  seq: { type: "int", help: "sequence length in tokens (default: the model's)", valueName: "N" },
  "global-batch": { type: "int", help: "sequences per step (default: the model's, else 4M tokens)", valueName: "N" },
  precision: { type: "string", help: "bf16 | fp16 | fp8 (default bf16; fp16 on a GPU without bf16, the V100)", valueName: "P" },
  json: { type: "bool", help: "machine output on stdout (the JSON contract)" },
  tp: { type: "int", help: "tensor-parallel degree", valueName: "N" },
  pp: { type: "int", help: "pipeline stages", valueName: "N" },
  dp: { type: "int", help: "data-parallel degree (default: gpus / (tp*pp*cp))", valueName: "N" },
  cp: { type: "int", help: "context-parallel degree", valueName: "N" },
  ep: { type: "int", help: "expert-parallel degree (MoE)", valueName: "N" },
  vpp: { type: "int", help: "virtual stages per pipeline stage (interleaved schedule)", valueName: "N" },
  "micro-batch": { type: "int", help: "sequences per micro-batch (default 1)", valueName: "N" },
  sp: { type: "bool", help: "Megatron sequence parallel (default on when tp > 1); --no-sp turns it off" },
  schedule: { type: "string", help: "naive | gpipe | 1f1b | interleaved | zb-h1 | zb-v", valueName: "S" },
  zero: { type: "int", help: "ZeRO stage 0-3", valueName: "Z" },
  recompute: { type: "string", help: "none | selective | full", valueName: "R" },
  "layers-per-stage": { type: "list", help: "uneven layer split, e.g. 19,21,21,19", valueName: "L,L,..." },
  "recompute-layers": { type: "list", help: "fully recomputed layers per stage, e.g. 4,2,0,0", valueName: "R,R,..." },
  ps: { type: "int", help: "parameter servers (data parallel through K servers)", valueName: "K" },
  async: { type: "bool", help: "asynchronous parameter-server updates" },
  staleness: { type: "int", help: "staleness bound for --async (default 1)", valueName: "K" },
  flash: { type: "bool", help: "fused (flash) attention (default on); --no-flash stores the score matrix" },
  "tp-comm-overlap": { type: "bool", help: "overlap tensor-parallel collectives with GEMMs (Megatron-LM --tp-comm-overlap)" },
  "dp-comm-exposed": { type: "bool", help: "data-parallel reduction after the last backward, not overlapped (DeepSpeed pipeline engine; ZeRO 0/1; the search: pp > 1 only)" },
  "dp-comm-blocking": { type: "bool", help: "every data-parallel collective in line with the passes, none overlapped (meshplan's executor under ZeRO 2/3)" },
  "pp-blocking-sends": { type: "bool", help: "each stage-to-stage transfer blocks both stages (DeepSpeed pipeline engine)" },
  "pp-scatter-gather": { type: "bool", help: "each tp rank sends 1/tp of a stage's output, the receiver all-gathers it over tp (Megatron-LM before Megatron-Core, DeepSpeed; none under SP, whose transfers are split already)" },
  "launch-blocking": { type: "bool", help: "every kernel launch waits for the last kernel (CUDA_LAUNCH_BLOCKING=1, as BLOOM trained)" },
  "recompute-early-stop": { type: "bool", help: "a layer recomputed in full skips its last product (PyTorch's non-reentrant checkpoint)" },
  "pp-keep-outputs": { type: "bool", help: "each stage keeps every in-flight micro-batch's output until its backward (DeepSpeed pipeline engine)" },
  "keep-16bit-grads": { type: "bool", help: "16-bit gradients kept beside the fp32 accumulators, 2 bytes per parameter more (DeepSpeed BF16_Optimizer)" },
  "fused-cross-entropy": { type: "bool", help: "the loss keeps 16-bit logits and no fp32 copy, 4 bytes per logit at its backward instead of 6 (flash-attn's fused cross-entropy, llm-foundry's default)" },
  "fp8-keep-16bit-inputs": { type: "bool", help: "fp8 only: linears keep their 16-bit inputs for the weight gradient (torchao Float8Linear, torchtitan), not their fp8 casts (Transformer Engine, the default)" },
  "fp32-shard-only": { type: "bool", help: "ZeRO 3 only: weights stored only as their fp32 master shard, cast to 16 bits as each layer is gathered, 2 bytes per parameter less (PyTorch FSDP mixed precision)" },
  "optimizer-state-bytes": { type: "int", help: "optimizer state per parameter before ZeRO sharding (default 12: fp32 master, momentum, variance; 6: bf16 ones, as NeMo's SFT recipe)", valueName: "N" },
  "optimizer-step-bytes": { type: "int", help: "HBM bytes the optimizer step moves per parameter of the shard (default: fused Adam's, about 30; Composer's per-operation DecoupledAdamW with clipping 92)", valueName: "N" },
  "grad-accum-bytes": { type: "int", help: "HBM bytes per parameter held that each micro-batch moves to add its gradients into the accumulated ones (default: none, fused into the gradient GEMM; PyTorch autograd with 16-bit gradients 6, DeepSpeed's BF16_Optimizer 18)", valueName: "N" },
  "runtime-reserve-bytes": { type: "int", help: "bytes each GPU holds outside the tensors: CUDA context, kernels, communicators' buffers (default: the GPU file's, lazy loading and one communicator)", valueName: "N" },
  "allocator-cache-share": { type: "number", help: "share of the tensors' peak bytes the caching allocator holds on top, fragmented (default 0; PyTorch's default allocator measured 0.03-0.14, median 0.059)", valueName: "F" },
  "zbv-passes": { type: "string", help: "ZB-V only: the lengths of a chunk's B and W in chunk forwards that its order is found for, multiples of 0.25 (default: the layer's passes as priced on the plan's GPU; execute: on its profile)", valueName: "B,W" },
  "shard-group": { type: "int", help: "hybrid sharding: ZeRO shards over groups of N data-parallel ranks, replicated across groups (FSDP HYBRID_SHARD)", valueName: "N" },
  "tp-sync-backward": { type: "bool", help: "tensor-parallel backward collectives not hidden behind the gradient GEMMs (Megatron-DeepSpeed, Megatron-LM before 2022)" },
  "fp32-grads": { type: "bool", help: "fp32 gradient accumulation (default on for bf16/fp8)" },
  calibrated: { type: "bool", help: "plan/simulate/explore with the efficiency factors fitted on published runs (models/hardware/calibration.json; the default); --no-calibrated predicts with the sourced priors alone" },
  planner: { type: "bool", help: "validate: also search the best plan of every published setting and compare (slow: 30-70 s)" },
  trace: { type: "string", help: "write a Chrome trace-event JSON (simulate)", valueName: "FILE" },
  top: { type: "int", help: "plans to show (plan: default 5; explore: default 10)", valueName: "K" },
  steps: { type: "int", help: "timed training steps to run (execute; default 12)", valueName: "K" },
  warmup: { type: "int", help: "untimed training steps before them while the workers' code warms up (execute; default 15)", valueName: "W" },
  timeout: { type: "int", help: "seconds a rank may wait in a collective before the run fails (execute; default 60)", valueName: "S" },
  profile: { type: "string", help: "device profile JSON (calibrate writes it, execute reads it; default meshplan-profile.json)", valueName: "FILE" },
  seed: { type: "int", help: "seed of the weights and the synthetic tokens (execute; default 1234)", valueName: "N" },
  backend: { type: "string", help: "auto | wasm | cpu | tensorflow | tensorflow-gpu (execute, calibrate; default wasm)", valueName: "B" },
  "shared-heap": { type: "bool", help: "execute: tp and cp collectives and ZeRO weight gathers read the other ranks' data in their shared wasm heaps (default on); --no-shared-heap copies it through the shared-memory slots" },
  help: { type: "bool", help: "show help" },
} as const satisfies Record<string, FlagSpec>;

export type FlagName = keyof typeof FLAGS;
export type FlagValue = string | number | boolean | number[];

export interface ParsedArgs {
  readonly command: string | undefined;
  readonly flags: Partial<Record<FlagName, FlagValue>>;
}

function isFlag(name: string): name is FlagName {
  return Object.hasOwn(FLAGS, name);
}

function parseInt10(flag: string, text: string): number {
  if (!/^-?\d+$/.test(text)) throw new InputError({ code: "bad-flag", field: `--${flag}`, value: text, valid: "an integer" });
  return Number(text);
}

function parseDecimal(flag: string, text: string): number {
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new InputError({ code: "bad-flag", field: `--${flag}`, value: text, valid: "a number" });
  return Number(text);
}

/** Parses `meshplan COMMAND [--flag value | --flag=value | --bool | --no-bool]...`. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const flags: Partial<Record<FlagName, FlagValue>> = {};
  // A second value would silently win over the first (a script that appends a flag to a pasted line).
  const setOnce = (name: FlagName, value: FlagValue) => {
    if (Object.hasOwn(flags, name)) {
      throw new InputError({ code: "bad-flag", field: `--${name}`, value: [flags[name], value], valid: "the flag given once", reason: `--${name} is given twice` });
    }
    flags[name] = value;
  };
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      if (command !== undefined) throw new InputError({ code: "bad-flag", field: "argument", value: arg, valid: "flags of the form --name value" });
      command = arg;
      continue;
    }
    const eq = arg.indexOf("=");
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let negated = false;
    if (!isFlag(name) && name.startsWith("no-") && isFlag(name.slice(3))) {
      name = name.slice(3);
      negated = true;
    }
    if (!isFlag(name)) throw unknownFlag(arg, name, command);
    const spec: FlagSpec = FLAGS[name];
    if (spec.type === "bool") {
      if (eq >= 0) throw new InputError({ code: "bad-flag", field: `--${name}`, value: arg.slice(eq + 1), valid: `--${name} or --no-${name} without a value` });
      setOnce(name, !negated);
      continue;
    }
    if (negated) throw new InputError({ code: "bad-flag", field: "flag", value: arg, valid: `--${name} ${spec.valueName ?? "VALUE"}` });
    const text = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (text === undefined || (eq < 0 && text.startsWith("--"))) {
      const what = spec.type === "int" ? ", an integer" : spec.type === "number" ? ", a number" : spec.type === "list" ? ", integers separated by commas" : "";
      throw new InputError({ code: "bad-flag", field: `--${name}`, value: undefined, valid: `--${name} ${spec.valueName ?? "VALUE"}${what}`, reason: "the flag needs a value" });
    }
    setOnce(name, spec.type === "int" ? parseInt10(name, text) : spec.type === "number" ? parseDecimal(name, text)
      : spec.type === "list" ? text.split(",").map((t) => parseInt10(name, t.trim())) : text);
  }
  return { command, flags };
}

/**
 * The flag that sets each plan field: the one pairing of CLI names and plan fields, used to read the
 * flags (planInputFrom) and to name the flag when resolvePlan rejects a field (planFieldAsFlag).
 */
export const FLAG_OF_PLAN_FIELD = {
  tp: "tp", pp: "pp", dp: "dp", cp: "cp", ep: "ep", virtualStages: "vpp", microBatch: "micro-batch", globalBatch: "global-batch",
  seqLen: "seq", sequenceParallel: "sp", schedule: "schedule", zero: "zero", recompute: "recompute", precision: "precision",
  layersPerStage: "layers-per-stage", recomputeLayersPerStage: "recompute-layers", parameterServers: "ps", asynchronous: "async",
  staleness: "staleness", flashAttention: "flash", fp32Gradients: "fp32-grads", tpCommOverlap: "tp-comm-overlap",
  dpCommExposed: "dp-comm-exposed", dpCommBlocking: "dp-comm-blocking", ppBlockingSends: "pp-blocking-sends", ppScatterGather: "pp-scatter-gather", tpSyncBackward: "tp-sync-backward",
  launchBlocking: "launch-blocking", recomputeEarlyStop: "recompute-early-stop", ppKeepOutputs: "pp-keep-outputs", keep16BitGrads: "keep-16bit-grads", fusedCrossEntropy: "fused-cross-entropy", fp8Keep16BitInputs: "fp8-keep-16bit-inputs", fp32ShardOnly: "fp32-shard-only", optimizerStateBytes: "optimizer-state-bytes", optimizerStepBytesPerParam: "optimizer-step-bytes", gradientAccumulationBytesPerParam: "grad-accum-bytes", runtimeReserveBytes: "runtime-reserve-bytes", allocatorCacheShare: "allocator-cache-share", shardGroup: "shard-group",
  vPassRatios: "zbv-passes",
} as const satisfies Readonly<Record<keyof PlanInput, FlagName>>;

/**
 * An error about a plan field, named as the user wrote it: `--tp-sync-backward (tpSyncBackward) = true
 * is not valid ...`. Errors from a file, or about anything else, are returned as they are.
 */
export function planFieldAsFlag(e: InputError): InputError {
  // the context's flags, not plan fields
  if (e.file === undefined && (e.field === "gpus" || e.field === "model")) return e.renamed(`--${e.field}`);
  if (e.file !== undefined || !Object.hasOwn(FLAG_OF_PLAN_FIELD, e.field)) return e;
  const flag = FLAG_OF_PLAN_FIELD[e.field as keyof PlanInput];
  return e.renamed(flag === e.field ? `--${flag}` : `--${flag} (${e.field})`);
}

const CONTEXT_FLAGS: readonly FlagName[] = ["model", "gpus", "cluster", "gpu", "gpus-per-node", "seq", "global-batch", "precision"];
/** The plan flags: every plan field's flag, less the context's (global batch, sequence, precision). */
const PLAN_FLAGS: readonly FlagName[] = Object.values(FLAG_OF_PLAN_FIELD).filter((f) => !CONTEXT_FLAGS.includes(f));

const OWN_WAY = "its ranks train in float32 on this machine's cores, predicted on its calibrated profile, with collectives of their own";

/**
 * Flags `execute` cannot honour, refused rather than ignored, and why: the ranks train in float32 on this
 * machine's cores, predicted on its calibrated profile (not a GPU or cluster file), and run their
 * collectives their own way (src/executor/measure/profile.ts asExecuted), whatever another framework's knobs
 * say; and the knobs whose every value but the default the executor refuses (src/executor/validate.ts),
 * whose default is what it does anyway. The one list: execute's flags, its help and its errors read it.
 */
const NOT_EXECUTED: Readonly<Partial<Record<FlagName, string>>> = {
  ...Object.fromEntries((["gpu", "cluster", "gpus-per-node", "precision", "fp32-grads", "tp-comm-overlap", "tp-sync-backward", "dp-comm-exposed",
    "dp-comm-blocking", "pp-blocking-sends", "launch-blocking", "recompute-early-stop", "pp-keep-outputs", "keep-16bit-grads", "fused-cross-entropy", "fp8-keep-16bit-inputs", "fp32-shard-only"] as const).map((f) => [f, OWN_WAY])),
  "optimizer-state-bytes": "its Adam keeps 12 bytes per parameter (fp32 master weights, momentum and variance), the default",
  "optimizer-step-bytes": "it measures its own optimizer step (meshplan calibrate)",
  "grad-accum-bytes": "its gradient accumulation is its own, timed by its calibrated profile",
  "runtime-reserve-bytes": "its memory is what TensorFlow.js holds, counted tensor by tensor, with no GPU runtime around it",
  "allocator-cache-share": "its memory is what TensorFlow.js holds, counted tensor by tensor, with no caching allocator",
  "pp-scatter-gather": "its pipeline sends whole activations, the default",
  "shard-group": "its ZeRO shards over the whole data-parallel group, the default; hybrid sharding is not executed",
};

function notExecuted(f: FlagName): boolean {
  return NOT_EXECUTED[f] !== undefined;
}

/** The flags each command reads (help for one command lists these). */
const COMMAND_FLAGS = {
  plan: [...CONTEXT_FLAGS, ...PLAN_FLAGS, "top", "calibrated", "json"],
  simulate: [...CONTEXT_FLAGS, ...PLAN_FLAGS, "trace", "calibrated", "json"],
  explore: [...CONTEXT_FLAGS, ...PLAN_FLAGS, "top", "calibrated"],
  execute: [...CONTEXT_FLAGS.filter((f) => !notExecuted(f)), ...PLAN_FLAGS.filter((f) => !notExecuted(f)), "steps", "warmup", "timeout", "profile", "seed", "backend", "shared-heap", "json"],
  calibrate: ["profile", "backend", "json"],
  validate: ["planner", "json"],
  models: ["json"],
} as const satisfies Readonly<Record<string, readonly FlagName[]>>;

export type CommandName = keyof typeof COMMAND_FLAGS;

/** The commands, in the order help lists them. */
export const COMMAND_NAMES = Object.keys(COMMAND_FLAGS) as readonly CommandName[];

function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMAND_FLAGS, name);
}

/**
 * An unknown flag, with the flags the command reads (all of them before a command is named) and, when one
 * is a typo away (two edits at most), that one first.
 */
function unknownFlag(arg: string, name: string, command: string | undefined): InputError {
  const known: readonly string[] = command !== undefined && isCommand(command) ? [...COMMAND_FLAGS[command], "help"] : Object.keys(FLAGS);
  const near = known.map((f) => ({ f, d: editDistance(name, f) })).filter((x) => x.d <= 2).sort((a, b) => a.d - b.d)[0];
  const scope = command !== undefined && isCommand(command) ? `${command} reads` : "flags";
  return new InputError({
    code: "bad-flag", field: "flag", value: arg,
    valid: `${near === undefined ? "" : `--${near.f} (the nearest); `}${scope}: ${known.map((f) => `--${f}`).join(" ")}`,
  });
}

/** Levenshtein distance: insertions, deletions and substitutions, one each. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/**
 * A flag the command does not read is bad input, not silently ignored (`plan --trace out.json` wrote
 * nothing and said nothing). An unknown command is named with the valid ones.
 */
export function checkCommandFlags(args: ParsedArgs): void {
  const command = args.command;
  if (command === undefined || command === "help") return;
  if (!isCommand(command)) {
    throw new InputError({ code: "bad-flag", field: "command", value: command, valid: COMMAND_NAMES.join(", "), reason: "unknown command" });
  }
  const allowed: readonly FlagName[] = COMMAND_FLAGS[command];
  for (const name of Object.keys(args.flags) as FlagName[]) {
    if (name === "help" || allowed.includes(name)) continue;
    throw new InputError({
      code: "bad-flag", field: `--${name}`, value: args.flags[name],
      reason: command === "execute" && notExecuted(name) ? `execute does not read --${name}: ${NOT_EXECUTED[name]}` : `${command} does not read --${name}`,
      valid: `a flag of ${command}: ${allowed.map((f) => `--${f}`).join(" ")}`,
    });
  }
}

/** Pinned parameter servers turn the search to pure data-parallel plans (planner/search/space.ts). */
const SEARCH_FLAG_HELP: Partial<Record<FlagName, string>> = {
  ps: "parameter servers: the search then ranks pure data-parallel plans (dp = every GPU) served by K servers",
};

/** Where a command's default differs from the flag's general one, its own help line. */
const COMMAND_FLAG_HELP: Readonly<Partial<Record<CommandName, Partial<Record<FlagName, string>>>>> = {
  plan: SEARCH_FLAG_HELP,
  explore: SEARCH_FLAG_HELP,
  execute: {
    model: "built-in model name, a meshplan model JSON or a Hugging Face config.json (default tiny-gpt)",
    gpus: "ranks to run, one per GPU of the plan (default dp * tp * pp * cp)",
    "global-batch": `sequences per step (default: the model's, else ${EXECUTE_DEFAULT_GLOBAL_BATCH}, tiny-gpt's)`,
    flash: "fused (flash) attention: refused here (the executor has no fused kernel; it stores the score matrix)",
  },
};

const COMMAND_LINES = [
  "  plan       search every hybrid split and rank the plans that fit",
  "  simulate   simulate one plan event by event (memory, time, timeline; --trace FILE)",
  "  explore    interactive terminal UI: browse, pin, compare and save plans (? shows the keys)",
  "  execute    run a plan for real on this machine (TensorFlow.js ranks) against its prediction (default model tiny-gpt)",
  "  calibrate  measure this machine for execute (writes meshplan-profile.json)",
  "  validate   compare predictions with the published runs of models/measurements (errors by source)",
  "  models     list built-in models, GPUs and clusters",
];

function flagRow(name: string, spec: FlagSpec): string {
  const left = `  --${name}${spec.valueName === undefined ? "" : ` ${spec.valueName}`}`;
  return `${left.padEnd(30)}${spec.help}`;
}

/** The whole help, or one command's usage and the flags it reads. */
export function helpText(command?: string): string {
  if (command !== undefined && isCommand(command)) {
    const only: readonly FlagName[] = COMMAND_FLAGS[command];
    const line = COMMAND_LINES.find((l) => l.startsWith(`  ${command} `))!;
    return [
      `usage: meshplan ${command} [flags]`, "", line.trim().replace(/^\S+\s+/, ""), "", "flags:",
      ...[...only, "help" as const].map((name) => flagRow(name, { ...FLAGS[name], help: COMMAND_FLAG_HELP[command]?.[name] ?? FLAGS[name].help })),
      ...(command === "execute" ? ["", `refused (execute --FLAG says why): ${Object.keys(NOT_EXECUTED).map((f) => `--${f}`).join(" ")}`] : []),
      "", "exit codes: 0 success, 1 no feasible plan or a failed check, 2 bad input",
    ].join("\n");
  }
  const rows = Object.entries(FLAGS).map(([name, spec]) => flagRow(name, spec));
  return [
    "meshplan: plan, explain and check how to split transformer training across a GPU cluster",
    "",
    "usage: meshplan COMMAND [flags]",
    "",
    "commands (meshplan COMMAND --help for one):",
    ...COMMAND_LINES,
    "",
    "flags:",
    ...rows,
    "",
    "exit codes: 0 success, 1 no feasible plan or a failed check, 2 bad input",
  ].join("\n");
}
