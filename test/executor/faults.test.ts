import { describe, expect, it } from "vitest";
import { execute } from "../../src/executor/execute.js";
import { ExecutionError, liveWorkers } from "../../src/executor/run/launch.js";
import type { FaultSpec } from "../../src/executor/run/protocol.js";
import { resolvePlan } from "../../src/spec/plan.js";
import { shapeOf } from "../helpers.js";
import { tinyGpt } from "./check.js";

/** Training runs that fail: the run ends with a message naming the rank and what it was doing, and no worker is left. */
async function failedRun(fault: FaultSpec, timeoutSeconds = 30): Promise<ExecutionError> {
  const model = tinyGpt();
  const plan = resolvePlan(model, shapeOf("dgx-h100", 2), { dp: 2, globalBatch: 4, flashAttention: false });
  const t0 = performance.now();
  const error = await execute({ model, plan, steps: 3, fault, timeoutSeconds, reference: false }).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ExecutionError);
  expect(liveWorkers()).toBe(0);
  expect(performance.now() - t0).toBeLessThan((timeoutSeconds + 10) * 1000);
  return error as ExecutionError;
}

describe("a failing rank ends the run", () => {
  it("a rank that throws in its backward pass", async () => {
    const e = await failedRun({ rank: 1, step: 1, phase: "backward", kind: "throw" });
    expect(e.rank).toBe(1);
    expect(e.kind).toBe("threw");
    expect(e.message).toBe("rank 1 failed during backward at step 1: injected fault before the backward of step 1");
  });

  it("a rank that is killed before its optimizer step", async () => {
    const e = await failedRun({ rank: 0, step: 1, phase: "optimizer", kind: "exit" });
    expect(e.rank).toBe(0);
    expect(e.kind).toBe("died");
    expect(e.message).toBe("rank 0 exited (code 3) during optimizer at step 1");
  });

  it("a collective that never completes times out (2 s here), naming the rank it waited for", async () => {
    const e = await failedRun({ rank: 1, step: 0, phase: "optimizer", kind: "hang" }, 2);
    expect(e.rank).toBe(0);
    expect(e.kind).toBe("timeout");
    expect(e.message).toMatch(/^rank 0: all-reduce \(dp\[0,1\], call \d+\) timed out after 2 s waiting for rank 1$/);
  });
});
