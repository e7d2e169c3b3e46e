import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { loadFlags } from "../../src/cli/explore.js";
import { builtinNames } from "../../src/cli/catalog.js";
import type { ExplorerEnv } from "../../src/ui/commands.js";
import { Explorer, type Size } from "../../src/ui/components/explorer.js";
import { sessionExecutor } from "../../src/ui/executor.js";
import type { Flags } from "../../src/ui/knobs.js";
import { inlinePlanner } from "../../src/ui/planner.js";
import { initialState } from "../../src/ui/state.js";

/** Key codes as a terminal sends them. */
export const KEY = { up: "\u001B[A", down: "\u001B[B", right: "\u001B[C", left: "\u001B[D", enter: "\r", escape: "\u001B" } as const;

export interface Started {
  readonly frame: () => string;
  readonly press: (...keys: string[]) => Promise<void>;
  readonly waitFor: (test: (frame: string) => boolean, what: string, ms?: number) => Promise<string>;
  readonly dir: string;
  readonly unmount: () => void;
}

export const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** Renders the explorer with the in-thread planner, a fixed size and no colour; keys one at a time. */
export async function startExplorer(flags: Flags, o: { size?: Size; color?: boolean; env?: Partial<ExplorerEnv> } = {}): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), "meshplan-ui-"));
  const loaded = loadFlags(flags);
  const env: ExplorerEnv = {
    planner: inlinePlanner(), top: 10, modelNames: builtinNames("model"), clusterNames: builtinNames("cluster"),
    saveDir: dir, load: loadFlags, execute: sessionExecutor(), runs: { stop: undefined }, ...o.env,
  };
  const app = render(<Explorer {...env} initial={initialState(flags, loaded.context, loaded.pinned)} color={o.color ?? false} size={o.size ?? { columns: 100, rows: 30 }} />);
  const frame = () => app.lastFrame() ?? "";
  await tick();
  const waitFor = async (test: (f: string) => boolean, what: string, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!test(frame())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; screen:\n${frame()}`);
      await tick();
    }
    return frame();
  };
  const press = async (...keys: string[]) => {
    for (const k of keys) {
      app.stdin.write(k);
      await tick();
    }
  };
  const unmount = () => {
    app.unmount();
    env.planner.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { frame, press, waitFor, dir, unmount };
}

/** The list's rows on screen: selected and marked flags and the cells after the gutter. */
export function listRows(frame: string): { selected: boolean; marked: boolean; cells: string[] }[] {
  return frame.split("\n").filter((l) => /^[> ][* ] *\d+( +\d+){5} /.test(l)).map((l) => ({ selected: l[0] === ">", marked: l[1] === "*", cells: l.slice(2).trim().split(/\s+/) }));
}

/** Column index of a list header cell (after the gutter), e.g. "tp". */
export function column(frame: string, head: string): number {
  const header = frame.split("\n").find((l) => /^ +# +dp +tp/.test(l)) ?? "";
  return header.trim().split(/\s+/).indexOf(head);
}

export const ready = (f: string) => f.includes("ranked by the simulator");
