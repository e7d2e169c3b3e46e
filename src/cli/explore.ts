import { InputError } from "../spec/errors.js";
import type { PlanInput } from "../spec/plan.js";
import type { FlagName, FlagValue, ParsedArgs } from "./args.js";
import { loadContext, planInputFrom, type Context } from "./context.js";
import type { Io } from "./io.js";

/** Plans in the list unless --top says otherwise. */
export const DEFAULT_TOP = 10;

type Flags = Partial<Record<FlagName, FlagValue>>;

/** Colour unless NO_COLOR is set (no-color.org) or the terminal has none; FORCE_COLOR forces it. */
export function colorEnabled(env: NodeJS.ProcessEnv, stdout: { isTTY?: boolean; hasColors?: () => boolean }): boolean {
  const no = env.NO_COLOR;
  if (no !== undefined && no !== "") return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== "") return force !== "0" && force !== "false";
  return stdout.isTTY === true && (stdout.hasColors?.() ?? false);
}

/** The flags and what they load: the same validation as `meshplan plan`. */
export function loadFlags(flags: Flags): { readonly context: Context; readonly pinned: PlanInput } {
  return { context: loadContext(flags, true), pinned: planInputFrom(flags) };
}

/** The flags loadContext reads; the others are plan knobs (planInputFrom). */
const CONTEXT_KEYS = ["model", "gpus", "cluster", "gpu", "gpus-per-node", "calibrated"] as const satisfies readonly FlagName[];

/**
 * loadFlags keeping the last context: a knob press that changes only plan knobs reuses the model, the
 * cluster with its GPU's measurements and the calibration instead of reading and parsing those files again
 * (4-10 ms a press). Plan knobs are validated on every call, as before.
 */
export function contextKeepingLoader(): (flags: Flags) => { readonly context: Context; readonly pinned: PlanInput } {
  let key: string | undefined;
  let context: Context | undefined;
  return (flags) => {
    const k = JSON.stringify(CONTEXT_KEYS.map((name) => flags[name] ?? null));
    if (context === undefined || k !== key) {
      context = loadContext(flags, true);
      key = k;
    }
    return { context, pinned: planInputFrom(flags) };
  };
}

const ALT_SCREEN_ON = "\x1b[?1049h\x1b[H";
const ALT_SCREEN_OFF = "\x1b[?1049l";
const SHOW_CURSOR = "\x1b[?25h";

/**
 * Ink hides the cursor through cli-cursor, whose restore-cursor writes the show-cursor sequence to stderr
 * when the process exits (a stray escape in a redirected stderr, `2>log`). The cursor was hidden on stdout,
 * the terminal: from the explorer's exit on, that one write goes there; every other stderr write is left as it is.
 */
export function cursorRestoreToStdout(stderr: Writable, stdout: Writable): void {
  const write = stderr.write.bind(stderr);
  stderr.write = (chunk, ...rest) => (chunk === SHOW_CURSOR ? stdout.write(SHOW_CURSOR) : write(chunk, ...rest));
}

interface Writable {
  write(chunk: unknown, ...rest: unknown[]): boolean;
}

/**
 * `meshplan explore`: the interactive terminal UI (src/ui). Full screen on the alternate screen, which
 * is restored on exit; searches run on worker threads. Ink and React load only for this command, in
 * their production build (the development build records every prop for profiling, seconds per key).
 * Exit codes: 0 after q, 2 for bad input or no terminal.
 */
export async function exploreCommand(args: ParsedArgs, io: Io): Promise<number> {
  // bad input (InputError) reaches run() in main.ts, which prints it on one line and returns 2
  const { top: topFlag, help: _help, ...flags } = args.flags;
  const top = typeof topFlag === "number" ? topFlag : DEFAULT_TOP;
  if (top < 1) throw new InputError({ code: "out-of-range", field: "--top", value: top, valid: "an integer >= 1" });
  const load = contextKeepingLoader();
  const loaded = load(flags);
  if (process.stdin.isTTY !== true || process.stdout.isTTY !== true) {
    io.err("meshplan: explore needs an interactive terminal (stdin and stdout); meshplan plan prints the same ranking as text");
    return 2;
  }
  process.env.NODE_ENV ??= "production";
  const { openExplorer } = await import("../ui/app.js");
  const restore = () => process.stdout.write(ALT_SCREEN_OFF);
  process.stdout.write(ALT_SCREEN_ON);
  process.once("exit", restore);
  let stopped = false;
  try {
    const app = openExplorer({ flags, loaded, load, top, color: colorEnabled(process.env, process.stdout), saveDir: process.cwd() });
    await app.waitUntilExit();
    // q during a run of x: its thread and the ranks it started are stopped with it (they would keep the
    // process alive, silent, until the run ended).
    stopped = app.stopRun();
  } finally {
    process.off("exit", restore);
    restore();
    cursorRestoreToStdout(process.stderr, process.stdout);
  }
  if (stopped) io.err("meshplan: explore: the run in progress (x) was stopped");
  return 0;
}
