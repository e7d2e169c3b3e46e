import { describe, expect, it } from "vitest";
import { simulate, simulateInput } from "../../src/simulator/simulate.js";
import { traceChunks } from "../../src/simulator/trace.js";
import type { SimInput, Timeline } from "../../src/simulator/types.js";
import { planFor, shapeOf } from "../helpers.js";
import { NO_DP, stage } from "./fixtures.js";

interface TraceEvent { name: string; ph: string; ts: number; dur: number; pid: number; tid: number; args?: Record<string, unknown> }

function parse(t: Timeline): TraceEvent[] {
  const json = JSON.parse([...traceChunks(t)].join("")) as { traceEvents: TraceEvent[] };
  return json.traceEvents;
}

const shape = shapeOf("dgx-h100", 16);
const timelines: [string, () => Timeline][] = [
  ["1F1B with tp, dp buckets and transfers", () => {
    const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp: 4, zero: 1, globalBatch: 32 });
    return simulate(model, shape, plan).timeline;
  }],
  ["interleaved, context parallel", () => {
    const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp: 4, cp: 2, virtualStages: 2, globalBatch: 16 });
    return simulate(model, shape, plan).timeline;
  }],
  ["ZB-H1 with ZeRO-3", () => {
    const { model, plan } = planFor("llama3-8b", shape, { pp: 2, tp: 4, zero: 3, schedule: "zb-h1", globalBatch: 16 });
    return simulate(model, shape, plan).timeline;
  }],
  ["asynchronous parameter servers", () => {
    const { model, plan } = planFor("llama3-8b", shape, { parameterServers: 3, asynchronous: true, globalBatch: 32 });
    return simulate(model, shape, plan).timeline;
  }],
];

describe("Chrome trace-event JSON", () => {
  it.each(timelines)("%s: parses; every event has name, ph, ts, dur, pid, tid", (_, make) => {
    const events = parse(make());
    expect(events.length).toBeGreaterThan(10);
    for (const e of events) {
      expect(typeof e.name).toBe("string");
      expect(["X", "M", "C"]).toContain(e.ph);
      for (const k of ["ts", "dur", "pid", "tid"] as const) expect(Number.isFinite(e[k])).toBe(true);
      expect(e.dur).toBeGreaterThanOrEqual(0);
    }
  });

  it.each(timelines)("%s: spans on one thread never overlap", (_, make) => {
    const byThread = new Map<string, TraceEvent[]>();
    for (const e of parse(make())) {
      if (e.ph !== "X") continue;
      const key = `${e.pid}/${e.tid}`;
      byThread.set(key, [...(byThread.get(key) ?? []), e]);
    }
    expect(byThread.size).toBeGreaterThan(1);
    for (const spans of byThread.values()) {
      spans.sort((a, b) => a.ts - b.ts);
      for (let i = 1; i < spans.length; i++) expect(spans[i]!.ts).toBeGreaterThanOrEqual(spans[i - 1]!.ts + spans[i - 1]!.dur - 1e-6);
    }
  });

  it.each(timelines)("%s: every process and thread with spans is named; memory counters peak where the timeline does", (_, make) => {
    const t = make();
    const events = parse(t);
    const processes = new Set(events.filter((e) => e.name === "process_name").map((e) => e.pid));
    const threads = new Set(events.filter((e) => e.name === "thread_name").map((e) => `${e.pid}/${e.tid}`));
    for (const e of events.filter((x) => x.ph === "X")) {
      expect(processes.has(e.pid)).toBe(true);
      expect(threads.has(`${e.pid}/${e.tid}`)).toBe(true);
    }
    expect(processes.size).toBe(t.ranks.length);
    t.ranks.forEach((r, i) => {
      const counters = events.filter((e) => e.ph === "C" && e.pid === i + 1 && e.name === "activation memory").map((e) => e.args!.bytes as number);
      if (r.role !== "server") expect(Math.max(...counters)).toBe(r.peakActivationBytes);
    });
  });

  it("an fp16 plan's optimizer step memory counter rises to the gradient copy as the optimizer span starts and falls as it ends", () => {
    const { model, plan } = planFor("llama3-8b", shape, { tp: 2, pp: 2, zero: 1, precision: "fp16", globalBatch: 16 });
    const t = simulate(model, shape, plan).timeline;
    const events = parse(t);
    t.ranks.forEach((r, i) => {
      const span = events.find((e) => e.ph === "X" && e.pid === i + 1 && e.name === "optimizer")!;
      const counter = events.filter((e) => e.ph === "C" && e.pid === i + 1 && e.name === "optimizer step memory");
      expect(counter.map((e) => e.ts)).toEqual([span.ts, span.ts + span.dur].map((x) => expect.closeTo(x, 3)));
      expect(counter.map((e) => e.args!.bytes)).toEqual([r.optimizerStepMemory.bytes[0], 0]);
      expect(counter[0]!.args!.bytes).toBeGreaterThan(0);
    });
  });

  it("a transfer shows on the sender's send thread and the receiver's receive thread, at the same time", () => {
    const input: SimInput = { schedule: "1f1b", microBatches: 2, virtualStages: 1, stages: [stage(), stage()], ppTransferSeconds: 0.25 };
    const events = parse(simulateInput(input)).filter((e) => e.ph === "X");
    const send = events.find((e) => e.name === "send act 0 to stage 1")!;
    const recv = events.find((e) => e.name === "recv act 0 from stage 0")!;
    expect([send.pid, send.tid, recv.pid, recv.tid]).toEqual([1, 4, 2, 5]);
    expect([recv.ts, recv.dur]).toEqual([send.ts, send.dur]);
    expect(send.ts).toBe(1e6);
    expect(send.dur).toBe(0.25e6);
  });

  it("zero-length operations (free transfers, the barrier) draw nothing", () => {
    const input: SimInput = { schedule: "gpipe", microBatches: 3, virtualStages: 1, stages: [stage({ dp: NO_DP }), stage()], ppTransferSeconds: 0 };
    const spans = parse(simulateInput(input)).filter((e) => e.ph === "X");
    expect(spans).toHaveLength(2 * 3 * 2); // forward and backward of 3 micro-batches on 2 stages
    for (const e of spans) expect(e.dur).toBeGreaterThan(0);
  });
});
