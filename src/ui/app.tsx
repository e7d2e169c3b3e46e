import { render } from "ink";
import type { Context } from "../cli/context.js";
import { builtinNames } from "../cli/catalog.js";
import type { PlanInput } from "../spec/plan.js";
import { running, type ExplorerEnv } from "./commands.js";
import { Explorer } from "./components/explorer.js";
import { sessionExecutor } from "./executor.js";
import type { Flags } from "./knobs.js";
import { createPlanner, type Planner } from "./planner.js";
import { createSimulate } from "./simulate-job.js";
import { initialState } from "./state.js";

export interface OpenOptions {
  readonly flags: Flags;
  readonly loaded: { readonly context: Context; readonly pinned: PlanInput };
  readonly load: ExplorerEnv["load"];
  readonly top: number;
  readonly color: boolean;
  readonly saveDir: string;
  /** Default: the worker planner where it is built, with its cache. */
  readonly planner?: Planner;
  /** Default: the process's streams. */
  readonly stdout?: NodeJS.WriteStream;
  readonly stdin?: NodeJS.ReadStream;
  /** Ink's debug mode: every frame written whole (benchmarks read them). */
  readonly debug?: boolean;
  /** Default: the session's executor (a worker thread per run, the profile kept for the session). */
  readonly execute?: ExplorerEnv["execute"];
}

export interface ExplorerApp {
  readonly waitUntilExit: () => Promise<unknown>;
  /** Unmounts and stops the planner's threads. */
  readonly close: () => void;
  /** Stops a run of `x` still going (its ranks are worker threads of this process); whether there was one. */
  readonly stopRun: () => boolean;
}

/** A name given on the command line that is not built in (a file) leads its list. */
function withGiven(names: string[], given: unknown): string[] {
  return typeof given === "string" && !names.includes(given) ? [given, ...names] : names;
}

/** Mounts the explorer (Ink) on a terminal. The CLI imports this lazily: Ink and React load only here. */
export function openExplorer(o: OpenOptions): ExplorerApp {
  const env: ExplorerEnv = {
    planner: o.planner ?? createPlanner(),
    top: o.top,
    modelNames: withGiven(builtinNames("model"), o.flags.model),
    clusterNames: withGiven(builtinNames("cluster"), o.flags.cluster),
    saveDir: o.saveDir,
    load: o.load,
    execute: o.execute ?? sessionExecutor(),
    runs: { stop: undefined },
    simulate: createSimulate(),
  };
  const app = render(<Explorer {...env} initial={initialState(o.flags, o.loaded.context, o.loaded.pinned)} color={o.color} />, {
    exitOnCtrlC: true,
    ...(o.stdout === undefined ? {} : { stdout: o.stdout }),
    ...(o.stdin === undefined ? {} : { stdin: o.stdin }),
    ...(o.debug === true ? { debug: true, patchConsole: false } : {}),
  });
  const close = () => {
    app.unmount();
    env.planner.close();
    env.runs.stop?.();
  };
  const stopRun = () => {
    const was = running(env.runs);
    env.runs.stop?.();
    return was;
  };
  return { waitUntilExit: () => app.waitUntilExit().finally(() => env.planner.close()), close, stopRun };
}
