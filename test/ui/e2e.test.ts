import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadFlags } from "../../src/cli/explore.js";
import { simulate } from "../../src/simulator/simulate.js";
import { listRows, ready } from "./helpers.js";

/**
 * `meshplan explore` in a real terminal: tmux runs the built CLI, keys go in with send-keys and the
 * screen comes back with capture-pane. Skipped, saying so, where tmux is not installed.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const hasTmux = spawnSync("tmux", ["-V"]).status === 0;
if (!hasTmux) console.warn("test/ui/e2e.test.ts: tmux is not installed; skipping the end-to-end explorer test (apt-get install tmux)");

/** The newest source file under `dir`, in ms. */
function newest(dir: string): number {
  return Math.max(...readdirSync(dir, { recursive: true, encoding: "utf8" }).map((f) => statSync(join(dir, f)).mtimeMs));
}

/** Builds dist/ when it lacks the explorer or is older than its sources (npm test has just built it). */
function ensureBuilt(): void {
  const built = join(ROOT, "dist", "src", "cli", "explore.js");
  if (existsSync(built) && statSync(built).mtimeMs >= Math.max(newest(join(ROOT, "src", "ui")), statSync(join(ROOT, "src", "cli", "explore.ts")).mtimeMs)) return;
  execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", ROOT], { stdio: "inherit" });
}

/** `node bin/meshplan.js explore` once main.ts registers it; until then the launcher beside this test. */
function entry(): string {
  const probe = spawnSync(process.execPath, [join(ROOT, "bin", "meshplan.js"), "explore", "--model", "no-such-model"], { encoding: "utf8" });
  return /not implemented|unknown command/.test(probe.stderr) ? join(ROOT, "test", "ui", "explore-launch.mjs") : join(ROOT, "bin", "meshplan.js");
}

// A private tmux server (its socket in this test's directory, no user config): nothing else is touched.
let dir = "";
let socket = "";
const session = "explore";
const tmux = (...args: string[]) => execFileSync("tmux", ["-S", socket, "-f", "/dev/null", ...args], { encoding: "utf8" });
const screen = () => tmux("capture-pane", "-p", "-t", session);
const keys = (...k: string[]) => tmux("send-keys", "-t", session, ...k);

async function waitFor(test: (s: string) => boolean, what: string, ms = 30_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = screen();
    if (test(s)) return s;
    const exited = s.includes("explorer exited with") && !what.includes("exit");
    if (exited || Date.now() > end) throw new Error(`${exited ? "the explorer exited" : "timed out"} waiting for ${what}; screen:\n${s}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!hasTmux)("meshplan explore in tmux", () => {
  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), "meshplan-e2e-"));
    socket = join(dir, "tmux.sock");
    const env = "env -u CI -u FORCE_COLOR NO_COLOR=1 TERM=xterm-256color";
    // stderr to a file: nothing may be written there (Ink's cursor restore wrote an escape sequence)
    const command = `${env} node ${entry()} explore --model llama3-8b --gpus 8 2>stderr.txt; echo "explorer exited with $?"; sleep 60`;
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", "-c", dir, command);
  }, 60_000);
  afterAll(() => {
    spawnSync("tmux", ["-S", socket, "kill-server"]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("moves the selection, pins tp, saves a plan that re-simulates to the same numbers, and quits cleanly", async () => {
    const first = await waitFor(ready, "the simulator's ranking");
    expect(listRows(first)[0]!.selected).toBe(true);
    keys("j");
    const moved = await waitFor((s) => listRows(s)[1]?.selected === true, "the selection on the second plan");
    const chosen = listRows(moved)[1]!.cells;
    const tp = chosen[2]!; // #, dp, tp

    keys("t");
    const pinned = await waitFor((s) => s.includes(`tp ${tp}*`) && s.includes("tp pinned") && ready(s), "the list re-planned with tp pinned");
    expect(listRows(pinned).length).toBeGreaterThan(1);
    expect(listRows(pinned).every((r) => r.cells[2] === tp)).toBe(true);
    expect(listRows(pinned).find((r) => r.selected)!.cells.slice(1)).toEqual(chosen.slice(1)); // the selection followed the plan

    keys("s");
    await waitFor((s) => s.includes("saved meshplan-"), "the saved message");
    const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    expect(files).toHaveLength(1);
    expect(readdirSync(dir).some((f) => f.endsWith(".tmp"))).toBe(false); // the temporary file was renamed
    const saved = JSON.parse(readFileSync(join(dir, files[0]!), "utf8"));
    expect(saved.plan.tp).toBe(Number(tp));
    // The context the explorer's flags give (the calibrated cluster, as plan and simulate use by default).
    const { context } = loadFlags({ model: saved.model, gpus: saved.cluster.gpus, cluster: saved.cluster.name });
    expect(JSON.parse(JSON.stringify(simulate(context.model, context.shape, saved.plan).estimate))).toEqual(saved);

    keys("q");
    const after = await waitFor((s) => s.includes("explorer exited with"), "the explorer to exit");
    expect(after).toContain("explorer exited with 0");
    expect(after).not.toContain("plans searched"); // the alternate screen is gone: the shell's screen is back
    expect(JSON.stringify(readFileSync(join(dir, "stderr.txt"), "utf8"))).toBe('""');
  }, 90_000);
});
