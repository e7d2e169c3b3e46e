/**
 * `node dist/bench/tp-layer.js PROFILE [ROUNDS]`: how one transformer layer's time shrinks under tensor
 * parallelism as the executor computes it, against the cost model's layer on that profile. Times tiny-gpt's
 * layer shape (h64 s32) and h128 s32 in one thread: the whole layer (tp 1), and tensor-parallel rank 0's
 * share of it (tp 2, sequence parallel on and off) with collectives that move nothing
 * (measure/passes.ts shapeOnlyGroup), so what is left is a rank's own compute. ROUNDS rounds (default 5),
 * each timing every case in turn (21 timed passes of each after 21 untimed, passes.ts layerPassSeconds), so a
 * slow spell of the machine lands on all cases alike; prints each case's median forward + B + W over the
 * rounds, its ratio to tp 1's, and the cost model's (compute.ts layerTimes on the profile's GPU). Not a test
 * and not a benchmark: src/executor/TIME-RECORD.md ("tp2's compute") records what it gave.
 */
import { layerPassSeconds, passesTotalSeconds } from "../src/executor/measure/passes.js";
import { profileShape, type DeviceProfile } from "../src/executor/measure/profile.js";
import { upperMedian } from "../src/executor/measure/stats.js";
import { loadBackend } from "../src/executor/run/backend.js";
import { readProfile } from "../src/cli/profile-file.js";
import { loadModel } from "../src/cli/catalog.js";
import { layerTimes } from "../src/planner/cost/compute.js";
import { resolvePlan } from "../src/spec/plan.js";
import type { ModelSpec, Plan } from "../src/spec/types.js";

const file = process.argv[2];
if (file === undefined) {
  console.error("tp-layer: usage: node dist/bench/tp-layer.js PROFILE [ROUNDS] (PROFILE: a profile meshplan calibrate wrote)");
  process.exit(2);
}
const rounds = process.argv[3] === undefined ? 5 : Number(process.argv[3]);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`tp-layer: ROUNDS = ${JSON.stringify(process.argv[3])} is not valid; want a whole number >= 1`);
  process.exit(2);
}
let profile: DeviceProfile;
try {
  profile = readProfile(file);
} catch (e) {
  console.error(`tp-layer: ${(e as Error).message}`);
  process.exit(2);
}
// One rank, as the layer is timed here: the profile's GPU as calibrated, no concurrency slowdown.
const shape = profileShape(profile, 1);
const gpu = shape.spec.gpu;
const { tf } = await loadBackend("wasm", 1);
const base = loadModel("tiny-gpt");
const cases = [{ tp: 1, sp: false }, { tp: 2, sp: true }, { tp: 2, sp: false }];
for (const h of [64, 128]) {
  const model: ModelSpec = { ...base, hiddenSize: h, headDim: h / base.attentionHeads, ffnHiddenSize: 4 * h };
  const plans: Plan[] = cases.map((c) => resolvePlan(model, { ...shape, gpus: c.tp }, { tp: c.tp, sequenceParallel: c.sp, globalBatch: 8, flashAttention: false, recompute: "none" }));
  const seconds = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    plans.forEach((plan, i) => seconds[i]!.push(passesTotalSeconds(layerPassSeconds(tf, model, plan, 21))));
  }
  const measured = seconds.map(upperMedian);
  const priced = plans.map((plan) => passesTotalSeconds(layerTimes(model, gpu, plan)));
  cases.forEach((c, i) => {
    const ms = (s: number) => `${(1e3 * s).toFixed(3)} ms`;
    console.log(`h${h} s32 tp ${c.tp}${c.tp > 1 ? ` SP ${c.sp ? "on " : "off"}` : "       "}  measured ${ms(measured[i]!)} (x${(measured[i]! / measured[0]!).toFixed(2)} of tp 1; rounds ${seconds[i]!.map((s) => (1e3 * s).toFixed(2)).join(" ")})  cost model ${ms(priced[i]!)} (x${(priced[i]! / priced[0]!).toFixed(2)})`);
  });
}
