import { attachFabric, type Endpoint } from "../comm/endpoint.js";
import type { Group } from "../comm/group.js";
import { MemoryLedger } from "../measure/ledger.js";
import { coordsOf, expertDataMembers, expertMembers, groupMembers, groupName, tiedPairs, workerCount, type Axis } from "../parallel/grid.js";
import { exchangeWithServers } from "../parallel/ps.js";
import { syncReplicatedGradients } from "../parallel/sp-sync.js";
import { loadBackend } from "./backend.js";
import type { RankJob, RankResult, StepRecord } from "./job.js";
import { runStage, stageModel } from "./pipeline.js";
import { speedProbe } from "./speed-probe.js";
import { holdsHead } from "../../spec/virtual-stages.js";
import type { FaultSpec, Program, Progress } from "./protocol.js";
import { expertGroup, joinHeaps, tensorGroup } from "./tensor-group.js";

/**
 * One training rank: builds its share of the model, then runs the steps: its stage's schedule of passes,
 * the data-parallel reduction (or the parameter-server exchange), the sequence-parallel gradient sum,
 * Adam, and reports what it measured. Runs in a worker thread, or in-process for the one-rank reference.
 */
function strike(fault: FaultSpec | undefined, rank: number, step: number, phase: FaultSpec["phase"]): void {
  if (fault === undefined || fault.rank !== rank || fault.step !== step || fault.phase !== phase) return;
  if (fault.kind === "throw") throw new Error(`injected fault before the ${phase} of step ${step}`);
  if (fault.kind === "exit") process.exit(3);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // hang: never take part again
}

function maybeGroup(ep: Endpoint, rank: number, job: RankJob, kind: "tp" | "cp" | "dp", axes: Axis[]): Group | undefined {
  const members = groupMembers(job.plan, rank, axes);
  if (members.length === 1) return undefined;
  if (kind === "dp" && job.plan.parameterServers > 0) return undefined;
  return ep.group(groupName(kind, members));
}

/**
 * How often a rank reports the passes it has begun, once a step has run that long: a step of the usual
 * sizes (tiny-gpt's CI plans: 60 to 300 ms a step on this machine, README "Time") never reports one, while
 * a step of a large global batch (minutes to hours) shows where it is once a second.
 */
export const PASS_PROGRESS_EVERY_MS = 1000;

/** Called before each of a step's `of` passes: reports the count begun, once a second after the step's first second. */
function passReporter(progress: Progress, step: number, of: number): () => void {
  const start = performance.now();
  let last = start;
  let done = 0;
  return () => {
    done++;
    const now = performance.now();
    if (now - last < PASS_PROGRESS_EVERY_MS) return;
    last = now;
    progress(step, "passes", { done, of });
  };
}

export const rankProgram: Program = async (input, progress, exchangeHeaps) => {
  const job = input.payload as RankJob;
  const { model, plan } = job;
  const rank = input.rank;
  const ep = attachFabric(input.memory, input.fabric, rank, input.timeoutSeconds);
  ep.status.set("starting", -1, 0);
  const loaded = await loadBackend(job.backend, workerCount(plan), { sharedHeap: input.shareHeap === true, sharedBinary: input.sharedBinary });
  const tf = loaded.tf;
  const heap = await joinHeaps(loaded, input, exchangeHeaps);
  // Before the baseline: the probe's weights are not the plan's memory. Not for asynchronous plans, whose
  // ranks meet at no barrier to run it together.
  const probe = job.speedProbe === undefined || plan.asynchronous ? undefined : speedProbe(tf, job.speedProbe, job.seed, job.adam);
  const baseline = tf.memory().numBytes;
  const coords = coordsOf(plan, rank);
  const tp = maybeGroup(ep, rank, job, "tp", ["tp"]);
  const cp = maybeGroup(ep, rank, job, "cp", ["cp"]);
  const dp = maybeGroup(ep, rank, job, "dp", ["dp", "cp"]);
  const world = ep.group(input.fabric.groups[input.fabric.groups.length - 1]!.name);
  const pair = tiedPairs(model, plan).find((m) => m.includes(rank));
  const tied = pair === undefined ? undefined : ep.group(groupName("tied", pair));
  const edpMembers = plan.ep > 1 ? expertDataMembers(plan, rank) : [];
  const edp = edpMembers.length > 1 ? ep.group(groupName("edp", edpMembers)) : undefined;
  const { chunks, state, tokens, actions } = stageModel(tf, model, plan, coords, job.seed, job.adam, dp, heap, edp);
  const ledger = new MemoryLedger(tf);
  const tpOps = tensorGroup(tf, tp, heap);
  const cpOps = tensorGroup(tf, cp, heap);
  const experts = plan.ep > 1 ? ep.group(groupName("ep", expertMembers(plan, rank))) : undefined;
  const epOps = expertGroup(tf, experts, heap);
  // The groups whose collectives take tensors: tp, cp, ep, and dp under ZeRO (its weight gathers).
  const tensorGroups = [tp, cp, experts, plan.zero >= 1 ? dp : undefined].filter((g): g is Group => g !== undefined);
  const heapCollectives = tensorGroups.length > 0 && tensorGroups.every((g) => g.heapForms);
  const steps: StepRecord[] = [];

  for (let step = 0; step < job.steps; step++) {
    if (!plan.asynchronous) world.barrier();
    let probeSeconds: number | undefined;
    if (probe !== undefined) {
      ep.status.set("speed probe", -1, step);
      probeSeconds = probe.step();
      world.barrier();
    }
    ep.traffic.reset();
    const passBegun = passReporter(progress, step, actions.length);
    const t0 = performance.now();
    const stage = runStage({
      tf, model, plan, coords, chunks, state, tp: tpOps, cp: cpOps, ...(epOps === undefined ? {} : { ep: epOps }), tokens, ledger, traffic: ep.traffic,
      ...(job.routingTokens === undefined ? {} : { routingTokens: job.routingTokens }),
      channel: (from, to) => ep.channel(from, to),
      before: (phase) => {
        ep.status.set(phase, -1, step);
        strike(job.fault, rank, step, phase);
        passBegun();
      },
    }, step, actions);
    ep.status.set("optimizer", -1, step);
    strike(job.fault, rank, step, "optimizer");
    const t1 = performance.now();
    const commBefore = ep.traffic.snapshot();
    if (plan.parameterServers > 0) exchangeWithServers(ep, plan, state, step);
    else {
      if (tied !== undefined) state.sumTiedCopies(tied);
      const grads = state.reduceGradients();
      if (plan.sequenceParallel && tp !== undefined) syncReplicatedGradients(tp, state.layout(), grads);
      state.update(grads);
    }
    ledger.sample();
    const t2 = performance.now();
    const snap = ep.traffic.snapshot();
    const commAfterUpdate = Object.values(snap.byKind).reduce((a, k) => a + k.seconds, 0) - Object.values(commBefore.byKind).reduce((a, k) => a + k.seconds, 0);
    steps.push({
      loss: stage.loss,
      seconds: (t2 - t0) / 1e3,
      forwardPassSeconds: stage.forwardPassSeconds,
      backwardPassSeconds: stage.backwardPassSeconds,
      optimizerSeconds: (t2 - t1) / 1e3 - commAfterUpdate,
      pipelineSpanSeconds: stage.spanSeconds,
      pipelineIdleSeconds: stage.pipelineIdleSeconds,
      pipelineStartMs: stage.startMs,
      pipelineEndMs: stage.endMs,
      comm: snap.byKind,
      passComm: commBefore.byKind,
      commBytesByPurpose: snap.byPurpose,
      ...(probeSeconds === undefined ? {} : { probeSeconds }),
    });
    progress(step, "step");
  }
  ep.status.set("done", -1, job.steps);
  const layout = state.layout();
  const owned = state.ownedWeights();
  const result: RankResult = {
    rank, coords, backend: loaded.backend, heapCollectives,
    ...(loaded.heapNote === undefined ? {} : { heapNote: loaded.heapNote }),
    holdsLoss: coords.tp === 0 && holdsHead(plan, coords.pp),
    steps,
    memory: { peakTensorBytes: ledger.peakTfBytes - baseline, peakActivationBytes: ledger.peakActivationBytes, states: state.bytes() },
    weights: job.collectWeights ? layout.map((u, i) => ({ unit: u.slots.unit.name, tpRank: coords.tp, first: u.owned.first, data: owned[i]! })) : [],
  };
  state.dispose();
  probe?.dispose();
  heap?.dispose();
  return result;
};
