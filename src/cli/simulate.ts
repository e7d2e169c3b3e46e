import { estimate } from "../planner/cost/estimate.js";
import { withPricedVPasses } from "../planner/cost/compute.js";
import { causalNote } from "../planner/explain/explain.js";
import { simulate } from "../simulator/simulate.js";
import { traceChunks } from "../simulator/trace.js";
import type { Timeline } from "../simulator/types.js";
import { defaultGlobalBatch, microBatchCount, resolvePlan } from "../spec/plan.js";
import { InputError } from "../spec/errors.js";
import type { ParsedArgs } from "./args.js";
import { loadContext, planInputFrom } from "./context.js";
import { outputTarget, writeOutput, writesToStdout } from "./output-file.js";
import { batchRoundedNote, bytesHuman, calibratedLine, defaultSeqLines, formatEstimate, pct, seconds } from "./format.js";
import type { Io } from "./io.js";
import { renderTimeline, zoomSeconds } from "./timeline.js";
import { grouped } from "../math/digits.js";

/** The terminal's width; piped, $COLUMNS where it is set (POSIX's preferred width), else 100. At least 40. */
function terminalColumns(): number {
  const c = process.stdout.columns;
  if (typeof c === "number" && c >= 40) return c;
  const env = Number(process.env.COLUMNS);
  return Number.isInteger(env) && env >= 40 ? env : 100;
}

/** Colour only on a terminal, and never when NO_COLOR is set to anything non-empty (no-color.org); FORCE_COLOR forces it. */
function useColor(): boolean {
  const no = process.env.NO_COLOR;
  if (no !== undefined && no !== "") return false;
  const force = process.env.FORCE_COLOR;
  if (force !== undefined && force !== "" && force !== "0") return true;
  return process.stdout.isTTY === true;
}

function summary(t: Timeline, simulatedSeconds: number, analyticSeconds: number): string {
  const x = t.exposed;
  const comm = [["tp", x.tpSeconds], ["cp", x.cpSeconds], ["ep", x.epSeconds], ["pp", x.ppSeconds], ["dp", x.dpSeconds]] as const;
  const exposed = comm.filter(([, s]) => s > 0).map(([k, s]) => `${k} ${seconds(s)}`);
  const diff = (simulatedSeconds - analyticSeconds) / analyticSeconds;
  return [
    `Simulated       ${grouped(t.ops.size)} operations event by event; step ${seconds(simulatedSeconds)} ` +
      `(analytic model ${seconds(analyticSeconds)}, ${diff >= 0 ? "+" : ""}${pct(diff)})`,
    `Exposed comm    ${exposed.length === 0 ? "none" : exposed.join(", ")} on the critical path (${t.ranks[t.criticalRank]?.name ?? "-"})`,
  ].join("\n");
}

/**
 * Most forward and backward passes `simulate` plays for one step (2^21, a few seconds on one core); the
 * event graph grows with micro-batches x stages x virtual stages.
 */
export const MAX_SIMULATED_PASSES = 2 ** 21;

/**
 * The largest JSON trace the browser viewers are known to open: chrome://tracing stops at 256 MB
 * (google/trace-viewer issue #627), and ui.perfetto.dev crashed on a 900 MB JSON trace (google/perfetto
 * issue #99; its large-traces guide puts a browser tab's memory at about 2 GB, the parsed trace taking
 * several times the file).
 */
const TRACE_VIEWER_BYTES = 256e6;

/** What to say about a trace of `bytes`: nothing, or how to open one too large for a browser viewer. */
export function traceSizeWarning(bytes: number): string | undefined {
  if (bytes <= TRACE_VIEWER_BYTES) return undefined;
  return `the trace is ${bytesHuman(bytes)}, above the 256 MB a browser viewer opens: load it with Perfetto's trace_processor --httpd (ui.perfetto.dev then reads it from there), or trace a smaller --global-batch`;
}

/** `meshplan simulate`: one plan, simulated event by event (time from the timeline, memory from the cost model). */
export function simulateCommand(args: ParsedArgs, io: Io): number {
  const trace = args.flags.trace;
  // checked before the simulation, which can take a while
  const traceTarget = trace === undefined ? undefined : outputTarget("--trace", trace);
  if (traceTarget !== undefined && args.flags.json === true && writesToStdout(traceTarget)) {
    throw new InputError({
      code: "bad-flag", field: "--trace", value: trace, valid: "a file other than stdout, or no --json",
      reason: "--json prints the estimate on stdout, and a trace there too would make it two JSON documents",
    });
  }
  const { model, shape, calibratedAt } = loadContext(args.flags, true);
  const input = planInputFrom(args.flags);
  const plan = withPricedVPasses(model, shape.spec.gpu, resolvePlan(model, shape, input));
  const passes = 2 * microBatchCount(plan) * plan.pp * plan.virtualStages;
  if (passes > MAX_SIMULATED_PASSES) {
    throw new InputError({
      code: "out-of-range", field: "--global-batch", value: plan.globalBatch,
      valid: `at most ${grouped(Math.floor((MAX_SIMULATED_PASSES * plan.dp * plan.microBatch) / (2 * plan.pp * plan.virtualStages)))} sequences with this split (or a larger --micro-batch)`,
      reason: `one step would be ${grouped(passes)} forward and backward passes to simulate, above ${grouped(MAX_SIMULATED_PASSES)}; \`meshplan plan\` estimates any batch analytically`,
    });
  }
  const rounded = batchRoundedNote(plan, defaultGlobalBatch(model, plan.seqLen), input.globalBatch);
  const batchNote = rounded === undefined ? [] : [rounded];
  const { estimate: simulated, timeline } = simulate(model, shape, plan);
  const traceBytes = traceTarget === undefined ? 0 : writeOutput(traceTarget, traceChunks(timeline));
  const traceWarning = traceSizeWarning(traceBytes);
  if (traceWarning !== undefined && args.flags.json === true) io.err(`simulate: ${traceWarning}`);
  // The contract's exit codes (design brief section 5): 1 when the plan is not feasible (does not fit).
  const code = simulated.memory.fits ? 0 : 1;
  if (args.flags.json === true) {
    io.out(JSON.stringify(simulated, null, 2));
    return code;
  }
  const analytic = estimate(model, shape, plan).time.stepSeconds;
  const view = { columns: terminalColumns(), color: useColor() };
  const causal = causalNote(model, simulated);
  const lines = [
    calibratedLine(calibratedAt),
    ...defaultSeqLines(model, args.flags.seq !== undefined),
    ...batchNote,
    formatEstimate(simulated), ...(causal === undefined ? [] : [causal]), summary(timeline, simulated.time.stepSeconds, analytic), "", renderTimeline(timeline, view),
  ];
  const zoom = zoomSeconds(timeline, view.columns);
  if (zoom !== undefined) {
    const end = timeline.spanSeconds;
    const pipelined = timeline.ranks.length > 1 && timeline.ranks[0]!.role === "stage";
    lines.push("", renderTimeline(timeline, { ...view, fromSeconds: 0, toSeconds: zoom, title: `Zoom: the first ${seconds(zoom)}${pipelined ? " (pipeline fill)" : ""}` }));
    lines.push("", renderTimeline(timeline, { ...view, fromSeconds: end - zoom, toSeconds: end, title: `Zoom: the last ${seconds(zoom)}${pipelined ? " (drain)" : ""}` }));
  }
  if (trace !== undefined) {
    lines.push("", `Trace           ${trace} (${bytesHuman(traceBytes)} of Chrome trace-event JSON; open in https://ui.perfetto.dev or chrome://tracing)`);
    if (traceWarning !== undefined) lines.push(`                ${traceWarning}`);
  }
  io.out(lines.join("\n"));
  return code;
}
