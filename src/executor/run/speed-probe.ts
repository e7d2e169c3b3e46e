import type { ModelSpec, Plan } from "../../spec/types.js";
import { Traffic } from "../comm/traffic.js";
import { MemoryLedger } from "../measure/ledger.js";
import type { Tf } from "../model/ops.js";
import type { AdamConfig } from "../parallel/adam.js";
import { runStage, stageModel } from "./pipeline.js";
import { tensorGroup } from "./tensor-group.js";

/**
 * The machine's speed, measured inside an execution: the one-rank training step `meshplan calibrate` ran
 * on every core at once (DeviceProfile.concurrency.probe), run by every rank between two barriers before
 * each of its steps, so that all ranks run it together as calibrate did, at the moments the plan's steps
 * are timed. A shared VM's speed moves by a third from one minute to the next (src/executor/TIME-RECORD.md,
 * "The machine's speed during the run"); the ratio of this step now to the same step at calibration carries the profile's rates to the
 * speed the run had (profile.ts atRunSpeed).
 *
 * The probe is a model of its own (its weights, tokens, Adam state, traffic and ledger), trained on one
 * rank with no collective: the plan's numerics, bytes and memory accounting never see it. Its persistent
 * tensors exist before the rank takes its memory baseline, so they are not counted as the plan's.
 */
export interface SpeedProbeSpec {
  readonly model: ModelSpec;
  readonly plan: Plan;
}

export interface SpeedProbe {
  /** One training step of the probe; its seconds. */
  step(): number;
  dispose(): void;
}

const NO_CHANNEL = () => {
  throw new Error("speed probe: a one-rank probe has no pipeline neighbours");
};

export function speedProbe(tf: Tf, spec: SpeedProbeSpec, seed: number, adam: AdamConfig): SpeedProbe {
  const { model, plan } = spec;
  if (plan.dp * plan.tp * plan.pp * plan.cp * plan.ep !== 1) throw new RangeError("speed probe: its plan must run on one rank");
  const coords = { dp: 0, tp: 0, pp: 0, cp: 0 };
  const { chunks, state, tokens, actions } = stageModel(tf, model, plan, coords, seed, adam, undefined);
  const none = tensorGroup(tf, undefined);
  const ledger = new MemoryLedger(tf);
  const traffic = new Traffic();
  let step = 0;
  return {
    step() {
      const t0 = performance.now();
      runStage({ tf, model, plan, coords, chunks, state, tp: none, cp: none, tokens, ledger, traffic, channel: NO_CHANNEL, before: () => {} }, step++, actions);
      state.update(state.reduceGradients());
      return (performance.now() - t0) / 1e3;
    },
    dispose: () => state.dispose(),
  };
}
