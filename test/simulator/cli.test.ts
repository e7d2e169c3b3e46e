import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { outputTarget } from "../../src/cli/output-file.js";
import { traceSizeWarning } from "../../src/cli/simulate.js";

// Runs the built binary (npm test compiles first: `tsc -p . && vitest run`).
const BIN = join(import.meta.dirname, "..", "..", "bin", "meshplan.js");
const PLAN = ["simulate", "--model", "llama3-8b", "--gpus", "16", "--tp", "2", "--pp", "4", "--global-batch", "64", "--zero", "1"];

function meshplan(args: string[], env: Record<string, string> = { NO_COLOR: "1" }) {
  const base = { ...process.env };
  delete base.NO_COLOR;
  delete base.FORCE_COLOR;
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...base, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/;

describe("meshplan simulate (the event simulator)", () => {
  it("--trace writes a Chrome trace that parses, and leaves no temporary file", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    const file = join(dir, "step.json");
    const r = meshplan([...PLAN, "--trace", file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("Timeline of one step");
    expect(r.stdout).toContain(file);
    const trace = JSON.parse(readFileSync(file, "utf8")) as { traceEvents: { ph: string; name: string }[] };
    expect(trace.traceEvents.filter((e) => e.ph === "X").length).toBeGreaterThan(100);
    expect(trace.traceEvents.some((e) => e.ph === "M" && e.name === "thread_name")).toBe(true);
    expect(trace.traceEvents.some((e) => e.ph === "C")).toBe(true);
    expect(readdirSync(dir)).toEqual(["step.json"]);
  });

  it("says how large the trace is, and how to open one too large for a browser viewer", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    const file = join(dir, "step.json");
    const r = meshplan([...PLAN, "--trace", file]);
    const size = readFileSync(file).length;
    expect(r.stdout).toContain(`${file} (${(size / 1e3).toFixed(1)} kB of Chrome trace-event JSON`);
    expect(traceSizeWarning(size)).toBeUndefined();
    expect(traceSizeWarning(256e6)).toBeUndefined();
    expect(traceSizeWarning(1.04e9)).toContain("the trace is 1.04 GB, above the 256 MB");
    expect(traceSizeWarning(1.04e9)).toContain("trace_processor --httpd");
  });

  it("removes the temporary file a killed earlier write left beside the trace, and no live run's", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    // a process that has exited: its pid names a run stopped mid-write (Ctrl-C ends a synchronous write at once)
    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    const stale = join(dir, `.step.json.${gone.stdout}.tmp`);
    const live = join(dir, `.step.json.${process.pid}.tmp`); // this test runner is alive: another write in progress
    writeFileSync(stale, "{\"traceEvents\": [");
    writeFileSync(live, "{");
    expect(meshplan([...PLAN, "--trace", join(dir, "step.json")]).code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([`.step.json.${process.pid}.tmp`, "step.json"]);
  });

  it("--json prints only the simulated Estimate; its breakdown adds up to the step", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    const r = meshplan([...PLAN, "--json", "--trace", join(dir, "t.json")]);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    const sum = Object.values(e.time.breakdown as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(e.time.stepSeconds, 9);
    expect(e.pipeline.bubbleFraction).toBeGreaterThan(0);
    expect(existsSync(join(dir, "t.json"))).toBe(true);
  });

  it("a trace path in a missing directory is one clear line on stderr and exit 2, with nothing written", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    const r = meshplan([...PLAN, "--trace", join(dir, "missing", "t.json")]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("--trace");
    expect(r.stderr).toContain("no such directory");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("--trace through a symbolic link writes the file it points to and keeps the link", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    const target = join(dir, "target.json");
    writeFileSync(target, "old");
    const link = join(dir, "link.json");
    symlinkSync(target, link);
    const r = meshplan([...PLAN, "--trace", link]);
    expect(r.code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(target, "utf8")).traceEvents.length).toBeGreaterThan(100);
    expect(readdirSync(dir).sort()).toEqual(["link.json", "target.json"]);
  });

  it("--trace /dev/stdout writes the trace on stdout, before the report, and replaces no file", () => {
    const r = meshplan([...PLAN, "--trace", "/dev/stdout"]);
    expect(r.code).toBe(0);
    const end = r.stdout.indexOf("\n]}\n") + 4;
    const trace = JSON.parse(r.stdout.slice(0, end));
    expect(trace.traceEvents.length).toBeGreaterThan(100);
    expect(r.stdout.slice(end)).toMatch(/^Memory per GPU|\nMemory per GPU/);
  });

  it("--json with the trace on stdout too is refused: stdout would hold two JSON documents", () => {
    const r = meshplan([...PLAN, "--json", "--trace", "/dev/stdout"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("--trace");
    expect(r.stderr).toContain("two JSON documents");
  });

  it("an output path that is a device is written in place, never renamed over (checked without writing)", () => {
    expect(outputTarget("--trace", "/dev/null")).toMatchObject({ path: "/dev/null", stream: true });
    expect(outputTarget("--trace", "/dev/stdout")).toMatchObject({ stream: true, fd: 1 });
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    expect(outputTarget("--trace", join(dir, "new.json"))).toMatchObject({ path: join(dir, "new.json"), stream: false });
    expect(() => outputTarget("--profile", "")).toThrow(/--profile .*no file name/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("--trace naming a directory is refused before anything is simulated", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-trace-"));
    const r = meshplan([...PLAN, "--trace", dir]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("is a directory");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("draws the timeline within 100 columns when stdout is not a terminal, without colour under NO_COLOR", () => {
    const r = meshplan(PLAN);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(ANSI);
    const timeline = r.stdout.slice(r.stdout.indexOf("Timeline of one step"));
    const rows = timeline.split("\n").filter((l) => l.startsWith("stage "));
    expect(rows.length).toBeGreaterThanOrEqual(4);
    for (const line of timeline.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
    expect(rows.join("")).toMatch(/F.*B/);
    expect(r.stdout).toMatch(/Simulated .* operations event by event/);
  });

  it("piped, draws the timeline within $COLUMNS where it is set", () => {
    const r = meshplan(PLAN, { NO_COLOR: "1", COLUMNS: "60" });
    const timeline = r.stdout.slice(r.stdout.indexOf("Timeline of one step"));
    expect(timeline.split("\n").filter((l) => l.startsWith("stage ")).length).toBeGreaterThanOrEqual(4);
    for (const line of timeline.split("\n")) expect(line.length).toBeLessThanOrEqual(60);
  });

  it("colours when forced (FORCE_COLOR) and NO_COLOR always wins", () => {
    expect(meshplan(PLAN, { FORCE_COLOR: "1" }).stdout).toMatch(ANSI);
    expect(meshplan(PLAN, { FORCE_COLOR: "1", NO_COLOR: "1" }).stdout).not.toMatch(ANSI);
  });
});
