import type { Built } from "./build-pipeline.js";
import { GraphBuilder } from "./graph.js";
import { MemoryLog } from "./memory.js";
import { Pass, stagePrograms } from "./schedules.js";
import { OpKind, Stream, type SimInput, type SimParameterServers } from "./types.js";

/**
 * Steps simulated with asynchronous servers: enough for the workers to drift apart and reach the steady
 * state that the staleness bound allows (two steps beyond the bound, plus the first).
 */
export function asyncSteps(ps: SimParameterServers): number {
  return ps.asynchronous ? ps.staleness + 3 : 1;
}

/**
 * Data parallelism through parameter servers (Li et al. 2014; TensorFlow's ParameterServerStrategy).
 * Workers are ranks 0..W-1, servers W..W+K-1. Each worker runs its m micro-batches (forward, backward),
 * then pushes its gradient shard to every server and pulls the new weights back, one message per server
 * on its own data-parallel stream, starting at server (w mod K) so workers spread over the servers. A
 * server's link takes messages first come first served: its queue is what the timeline shows.
 * - Synchronous: a server applies the update once all W pushes have arrived; pulls wait for it, and a
 *   step ends when every worker has its new weights.
 * - Asynchronous (Hogwild-style with a staleness bound; Ho et al. 2013, SSP): each push is applied on
 *   arrival and answered by the pull; worker w's step s may start once its own pulls of step s - 1 -
 *   staleness are done, never waiting for other workers.
 */
export function buildParameterServers(input: SimInput, ps: SimParameterServers): Built {
  const W = ps.workers;
  const K = ps.servers;
  const m = input.microBatches;
  const st = input.stages[0]!;
  const steps = asyncSteps(ps);
  const b = new GraphBuilder(W + K);
  const prog = stagePrograms("1f1b", 1, m, 1)[0]!;
  const passSeconds = [st.forwardSeconds, st.backwardInputSeconds + st.backwardWeightSeconds + st.recomputeSeconds];
  const memory = Array.from({ length: W + K }, () => new MemoryLog());
  const lastPull: Int32Array[] = []; // [step][worker]
  const prevDone = new Int32Array(W).fill(-1);
  const dpPrev = new Int32Array(W).fill(-1);
  const stepEnds: Int32Array[] = [];

  for (let step = 0; step < steps; step++) {
    const pushes = new Int32Array(W * K); // [worker * K + server]
    for (let w = 0; w < W; w++) {
      const waitFor = step - 1 - (ps.asynchronous ? ps.staleness : 0);
      for (let k = 0; k < prog.length; k++) {
        const pass = prog.pass[k]!;
        const mb = prog.microBatch[k]!;
        const op = b.op(pass === Pass.forward ? OpKind.forward : OpKind.backward, w, Stream.compute, passSeconds[pass]!, mb, 0, step);
        b.edge(prevDone[w]!, op);
        if (k === 0 && waitFor >= 0) b.edge(lastPull[waitFor]![w]!, op);
        if (pass === Pass.forward) memory[w]!.add(op, false, st.memory.perMicroBatchBytes + st.memory.lossBytes);
        else {
          memory[w]!.add(op, false, st.memory.backwardTransientBytes);
          memory[w]!.add(op, true, -st.memory.backwardTransientBytes - st.memory.lossBytes - st.memory.perMicroBatchBytes);
        }
        let done = op;
        const collectives: [typeof OpKind.tp | typeof OpKind.cp | typeof OpKind.ep, number][] = pass === Pass.forward
          ? [[OpKind.tp, st.tp.forward], [OpKind.cp, st.cp.forward], [OpKind.ep, st.ep.forward]]
          : [[OpKind.tp, st.tp.backward], [OpKind.cp, st.cp.backward], [OpKind.ep, st.ep.backward]];
        for (const [kind, seconds] of collectives) {
          if (seconds <= 0) continue;
          const c = b.op(kind, w, Stream.collective, seconds, mb, 0, step);
          b.edge(done, c);
          done = c;
        }
        prevDone[w] = done;
      }
      for (let i = 0; i < K; i++) {
        const server = (w + i) % K;
        const push = b.op(OpKind.psPush, w, Stream.dp, ps.pushSeconds, -1, server, step);
        b.fifo(push, W + server, Stream.recv);
        b.edge(prevDone[w]!, push);
        b.edge(dpPrev[w]!, push);
        dpPrev[w] = push;
        pushes[w * K + server] = push;
      }
    }
    const updates = new Int32Array(K).fill(-1);
    if (!ps.asynchronous) {
      for (let server = 0; server < K; server++) {
        const u = b.op(OpKind.psUpdate, W + server, Stream.compute, ps.updateSeconds, -1, server, step);
        for (let w = 0; w < W; w++) b.edge(pushes[w * K + server]!, u);
        updates[server] = u;
      }
    }
    const pulls = new Int32Array(W);
    for (let w = 0; w < W; w++) {
      for (let i = 0; i < K; i++) {
        const server = (w + i) % K;
        let ready = updates[server]!;
        if (ps.asynchronous) {
          // The server applies this worker's push on arrival (its compute stream, in arrival order).
          ready = b.op(OpKind.psUpdate, W + server, Stream.compute, ps.updateSeconds, w, server, step);
          b.fifo(ready, W + server, Stream.compute);
          b.edge(pushes[w * K + server]!, ready);
        }
        const pull = b.op(OpKind.psPull, w, Stream.dp, ps.pullSeconds, -1, server, step);
        b.fifo(pull, W + server, Stream.recv);
        b.edge(ready, pull);
        b.edge(dpPrev[w]!, pull);
        dpPrev[w] = pull;
      }
      pulls[w] = dpPrev[w]!;
    }
    lastPull.push(pulls);
    stepEnds.push(pulls);
  }
  const ranks = [
    ...Array.from({ length: W }, (_, w) => ({ name: `worker ${w}`, role: "worker" as const })),
    ...Array.from({ length: K }, (_, k) => ({ name: `server ${k}`, role: "server" as const })),
  ];
  return { builder: b, ranks, memory, stepEnds };
}
