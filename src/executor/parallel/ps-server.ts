import { attachFabric } from "../comm/endpoint.js";
import { recvAny } from "../comm/p2p.js";
import { initialParameters } from "../model/data.js";
import { modelUnits, sliceForRank, unitSlots } from "../model/layout.js";
import type { Program } from "../run/protocol.js";
import type { RankJob, RankResult } from "../run/job.js";
import { adamState, adamStep } from "./adam.js";
import { coordsOf, workerCount } from "./grid.js";
import { concat, serverBlock } from "./ps.js";

/**
 * A parameter server (see ps.ts): holds block k of the weights and its Adam states. Needs no
 * TensorFlow.js. Synchronous: per step, sums the workers' pushes in worker order, updates once, answers
 * everyone. Asynchronous: updates with each push in arrival order (the gradient scaled by the number of
 * workers, since each worker's gradient is its share of the global mean), and answers a worker once it
 * is no more than `staleness` steps ahead of the slowest; records, per update, how many other updates
 * happened since the pushing worker got its weights (its staleness).
 */
export const serverProgram: Program = async (input, progress) => {
  const job = input.payload as RankJob;
  const { model, plan } = job;
  const ep = attachFabric(input.memory, input.fabric, input.rank, input.timeoutSeconds);
  const workers = workerCount(plan);
  const k = input.rank - workers;
  const init = initialParameters(model, job.seed);
  const full = concat(modelUnits(model).map((u) => {
    const slots = unitSlots(u, 1);
    return concat(slots.tensors.map((t) => sliceForRank(init.get(t.spec.name)!, t.spec, 1, 0)));
  }));
  const block = serverBlock(full.length, plan, k);
  const weights = full.slice(block.first, block.end);
  const adam = adamState(weights.length);
  const staleness: number[] = [];
  const world = ep.group(input.fabric.groups[input.fabric.groups.length - 1]!.name);

  if (!plan.asynchronous) {
    for (let step = 0; step < job.steps; step++) {
      world.barrier();
      // The workers' speed probe (run/speed-probe.ts) ends on a second barrier of the world.
      if (job.speedProbe !== undefined) world.barrier();
      const sum = new Float32Array(weights.length);
      for (let w = 0; w < workers; w++) {
        const g = ep.channel(w, input.rank).recv(step, "dp.ps-push");
        for (let i = 0; i < sum.length; i++) sum[i]! += g[i]!;
      }
      adamStep(weights, sum, adam, step + 1, job.adam);
      for (let w = 0; w < workers; w++) ep.channel(input.rank, w).send(step, weights, "dp.ps-pull");
      progress(step, "server");
    }
  } else {
    let version = 0;
    const basedOn = new Array<number>(workers).fill(0);
    const clock = new Array<number>(workers).fill(0);
    const waiting = new Set<number>();
    const inbox = ep.inbox();
    const release = () => {
      const slowest = Math.min(...clock);
      for (const w of [...waiting]) {
        if (clock[w]! - slowest > plan.staleness && clock[w]! < job.steps) continue;
        waiting.delete(w);
        basedOn[w] = version;
        ep.channel(input.rank, w).send(clock[w]! - 1, weights, "dp.ps-pull");
      }
    };
    for (let n = 0; n < workers * job.steps; n++) {
      const { channel, message } = recvAny(inbox, input.rank, ep.waiter, ep.status);
      const w = channel.from;
      staleness.push(version - basedOn[w]!);
      const g = message.data;
      for (let i = 0; i < g.length; i++) g[i]! *= workers;
      version++;
      adamStep(weights, g, adam, version, job.adam);
      clock[w] = message.tag + 1;
      waiting.add(w);
      release();
      progress(Math.min(...clock), "server");
    }
  }
  const result: RankResult = {
    rank: input.rank, coords: coordsOf(plan, 0), backend: "none", heapCollectives: false, holdsLoss: false, steps: [],
    memory: { peakTensorBytes: 0, peakActivationBytes: 0, states: { parametersBytes: 4 * weights.length, gradientsBytes: 0, optimizerBytes: 8 * weights.length } },
    weights: [{ unit: "server", tpRank: 0, first: block.first, data: weights }],
    staleness,
  };
  return result;
};
