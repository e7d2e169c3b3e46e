import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateCommand } from "../../src/cli/validate.js";

function run(flags: Record<string, unknown>, paths?: { measurements?: string; calibration?: string }) {
  let out = "";
  let err = "";
  const io = { out: (t: string) => void (out += `${t}\n`), err: (t: string) => void (err += `${t}\n`) };
  const code = validateCommand({ command: "validate", flags }, io, paths);
  return { code, out, err };
}

describe("meshplan validate", () => {
  const json = run({ json: true });
  const report = JSON.parse(json.out);

  it("--json prints one report object, its checks, and exits 1 exactly when a check fails", () => {
    expect(json.code).toBe(report.checks.every((c: { pass: boolean }) => c.pass) ? 0 : 1);
    expect(json.err).toBe("");
    expect(Object.keys(report).sort()).toEqual(["calibration", "checks", "compared", "compares", "disputed", "outOfMemoryRecords", "records", "rows", "skipped", "summary", "violations"]);
    // the checks read the summary's held-out figures and the violations
    const check = (name: string) => report.checks.find((c: { name: string }) => c.name === name);
    expect(check("held-out worst record").value).toBe(report.summary.heldOut.model.overall.max);
    expect(check("published runs predicted to fit, reported out-of-memory runs not to").value).toBe(report.violations.length);
    expect(report.records).toBe(533);
    expect(report.compared + report.outOfMemoryRecords + report.skipped.length).toBe(533);
    expect(report.compares).toMatch(/hardware FLOPs/);
  });

  it("each row has the prediction, the measurement, its unit and the errors", () => {
    const row = report.rows.find((r: { id: string }) => r.id === "r0204");
    expect(row).toMatchObject({ source: "bloom-176b", gpus: 384, ran: true, measured: { kind: "iteration-seconds", value: 105.22 } });
    expect(row.predicted).toBeGreaterThan(0);
    expect(row.error).toBeCloseTo(105.22 / row.predicted - 1, 9);
    for (const k of ["priorError", "heldOutError", "baselineError", "heldOutBaselineError", "peakGiB", "fits", "assumptions"]) expect(row).toHaveProperty(k);
  });

  it("summarises by source and overall: median, p90 and max, for the model and the MFU baseline", () => {
    const s = report.summary;
    for (const part of [s.model, s.prior, s.baseline, s.heldOut.model, s.heldOut.baseline]) {
      expect(part.overall.count).toBe(report.compared);
      for (const k of ["median", "p90", "max"]) expect(part.overall[k]).toBeGreaterThan(0);
      expect(Object.keys(part.bySource).length).toBeGreaterThanOrEqual(10);
    }
    for (const v of report.violations) expect(v.violation).toMatch(/predicted/);
  });

  it("prints a readable table and summary without --json", () => {
    const text = run({});
    expect(text.code).toBe(json.code);
    expect(text.out).toMatch(/Checks \(exit 1 when one fails\): /);
    expect(text.out).toContain("Absolute relative error of throughput, median / p90 / max");
    expect(text.out).toMatch(/\nall\s+\d+/);
    expect(text.out).toContain("Skipped");
  });

  it("exits 2 with one line when the measurements cannot be read", () => {
    const dir = mkdtempSync(join(tmpdir(), "meshplan-validate-"));
    writeFileSync(join(dir, "broken.jsonl"), "{ not json\n");
    const r = run({}, { measurements: dir });
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("broken.jsonl:1");
    expect(run({}, { measurements: join(dir, "missing") }).code).toBe(2);
  });
});
