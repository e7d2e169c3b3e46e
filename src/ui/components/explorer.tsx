import { Box, useApp, useInput, useStdout } from "ink";
import { useEffect, useMemo, useReducer, useRef, useState } from "react";
import { explainRanking, searchSummary } from "../../planner/explain/explain.js";
import { frameworkLine } from "../../cli/format.js";
import { knobContext, serversText } from "../knobs.js";
import { layout, tooSmall, MIN_COLUMNS, MIN_ROWS } from "../layout.js";
import { runCommand, type ExplorerEnv } from "../commands.js";
import type { Execution } from "../executor.js";
import { commandFor, unboundKey } from "../keys.js";
import { entries, isMarked, recomputing, reduce, selectedEstimate, selectedTimeline, type Action, type ExplorerState } from "../state.js";
import { Detail } from "./detail.js";
import { KnobBar } from "./knob-bar.js";
import { Compare, ExecuteView, Help } from "./panels.js";
import { PlanList } from "./plan-list.js";
import { Hints, StatusLine } from "./status.js";
import { ColorContext, Line } from "./styled.js";
import { grouped } from "../../math/digits.js";

export interface Size {
  readonly columns: number;
  readonly rows: number;
}

export interface ExplorerProps extends ExplorerEnv {
  readonly initial: ExplorerState;
  readonly color: boolean;
  /** Fixed size (tests); by default the terminal's, following resizes. */
  readonly size?: Size;
}

function useTerminalSize(fixed: Size | undefined): Size {
  const { stdout } = useStdout();
  const read = (): Size => ({ columns: stdout.columns > 0 ? stdout.columns : MIN_COLUMNS, rows: stdout.rows > 0 ? stdout.rows : MIN_ROWS });
  const [size, setSize] = useState(read);
  useEffect(() => {
    if (fixed !== undefined) return;
    const onResize = () => setSize(read());
    stdout.on("resize", onResize);
    return () => {
      stdout.off("resize", onResize);
    };
  }, [stdout, fixed]);
  return fixed ?? size;
}

/** What the planner is doing, or what it found: the status line after the latest message. */
export function statusText(s: ExplorerState): string {
  const r = s.result;
  const pending = recomputing(s);
  switch (s.phase) {
    case "searching": return pending === undefined ? "searching the plan space..." : `ranking for ${pending}...: the list shown is the previous one`;
    case "refining": return "analytic ranking shown; the simulator ranks the best plans...";
    // the list's place shows the whole reason, wrapped
    case "error": return s.view === "main" ? "no plan with these knobs (why above; u frees every pin)" : `no plan: ${s.error ?? "error"}`;
    case "ready":
      if (r === undefined) return "";
      if (r.plans.length === 0) return `nothing fits in memory (${grouped(r.searched)} plans searched): the closest are listed`;
      // the timing first: an 80-column line cuts the end
      return `ranked by the simulator in ${r.seconds.toFixed(2)} s: ${searchSummary(r)}`;
  }
}

/** The explorer: knobs, ranked plans and the selected plan's detail; every change re-plans at once. */
export function Explorer(props: ExplorerProps) {
  const { exit } = useApp();
  const size = useTerminalSize(props.size);
  const [state, dispatch] = useReducer(reduce, props.initial);
  const [run, setRun] = useState<Execution | undefined>(undefined);
  // The state after every action dispatched so far, for key handlers that run before the next render.
  const latest = useRef(state);
  const apply = (a: Action) => {
    latest.current = reduce(latest.current, a);
    dispatch(a);
  };

  const { model, shape } = state.context;
  useEffect(() => {
    props.planner.request({ id: state.request, model, shape, pinned: state.pinned, top: props.top }, (update) => apply({ type: "update", update }));
  }, [state.request]);

  const knobs = useMemo(() => knobContext(state.context, state.pinned, props), [state.context, state.pinned]);

  useInput((input, key) => {
    // Ink hands over plain characters that arrive together (typed ahead while busy) as one string.
    const presses = input.length > 1 && key.ctrl !== true && key.meta !== true ? [...input] : [input];
    for (const press of presses) {
      const cmd = commandFor(press, key, latest.current.focus);
      if (cmd?.kind === "quit") {
        exit();
        return;
      }
      // The too-small screen shows nothing to act on and says only q: other keys (s saves, x runs) wait.
      if (tooSmall(size.columns, size.rows)) continue;
      if (cmd === undefined) {
        const said = unboundKey(press, key);
        if (said !== undefined) apply({ type: "message", message: said });
        continue;
      }
      const s = latest.current;
      runCommand(cmd, s, knobContext(s.context, s.pinned, props), props, apply, setRun);
    }
  });

  const list = entries(state.result);
  const selected = selectedEstimate(state);
  const shown = state.resultContext;
  const why = useMemo(() => {
    if (state.result?.timelines === undefined) return [];
    const framework = state.result.plans[0] === undefined ? undefined : frameworkLine(state.result.plans[0].plan);
    return [...(framework === undefined ? [] : [framework]), ...explainRanking(shown.model, shown.shape, state.result.plans)];
  }, [state.result]);

  if (tooSmall(size.columns, size.rows)) {
    return (
      <ColorContext.Provider value={props.color}>
        <Line>{`terminal too small: ${size.columns}x${size.rows}`}</Line>
        <Line>{`the explorer needs at least ${MIN_COLUMNS}x${MIN_ROWS}`}</Line>
        <Line>enlarge it, or press q to quit</Line>
      </ColorContext.Provider>
    );
  }
  const L = layout(size.columns, size.rows, Math.max(props.top, list.length));
  const marks = state.marks;
  let body;
  if (state.view === "help") body = <Help />;
  else if (state.view === "compare" && marks.length === 2) body = <Compare a={marks[0]!} b={marks[1]!} columns={L.columns} />;
  else if (state.view === "execute" && run !== undefined) body = <ExecuteView run={run} columns={L.columns} />;
  else {
    const empty = state.phase === "error" ? `no plan: ${state.error ?? ""} (u frees every pin)` : "searching...";
    const noTimeline = selected?.memory.fits === false ? "this plan does not fit in memory; not simulated" : "simulating...";
    body = (
      <>
        <PlanList plans={list} selected={state.selected} marked={(e) => isMarked(state, e)} rows={L.listRows} columns={L.columns} empty={empty} experts={shown.model.moe !== undefined}
          stale={recomputing(state) !== undefined} />
        <Detail estimate={selected} timeline={selectedTimeline(state)} noTimeline={noTimeline} shape={shown.shape} columns={L.columns}
          lines={L.detailLines} window={state.window} color={props.color} why={why} />
      </>
    );
  }
  return (
    <ColorContext.Provider value={props.color}>
      <Box flexDirection="column" width={L.columns} height={L.height} overflow="hidden">
        <KnobBar flags={state.flags} knobs={knobs} selected={selected?.plan} focus={state.focus} title={L.wide} columns={L.columns} calibrated={state.context.calibratedAt !== undefined} gpu={typeof state.flags.gpu === "string" ? state.context.shape.spec.gpu.name : undefined} servers={serversText(state.flags)} />
        <Box flexDirection="column" flexGrow={1} overflow="hidden">{body}</Box>
        <StatusLine busy={state.phase === "searching" || state.phase === "refining"} text={statusText(state)} error={state.phase === "error"} message={state.message} />
        <Hints columns={L.columns} />
      </Box>
    </ColorContext.Provider>
  );
}
