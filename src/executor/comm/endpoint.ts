import { layoutFabric, type FabricSpec } from "./fabric.js";
import { Group } from "./group.js";
import { kernels } from "./kernels.js";
import { Channel } from "./p2p.js";
import { Status, Waiter } from "./sync.js";
import { Traffic } from "./traffic.js";

/** One rank's handle on the fabric: its groups by name, its channels by "from->to", its accounting. */
export interface Endpoint {
  readonly rank: number;
  readonly control: Int32Array;
  readonly waiter: Waiter;
  readonly status: Status;
  readonly traffic: Traffic;
  group(name: string): Group;
  channel(from: number, to: number): Channel;
  /** Every channel into this rank. */
  inbox(): Channel[];
}

export function attachFabric(memory: WebAssembly.Memory, spec: FabricSpec, rank: number, timeoutSeconds: number): Endpoint {
  const layout = layoutFabric(spec);
  const control = new Int32Array(memory.buffer);
  const waiter = new Waiter(control, rank, timeoutSeconds);
  const status = new Status(control, rank);
  const traffic = new Traffic();
  const k = kernels(memory);
  const groups = new Map<string, Group>();
  layout.groups.forEach((g, i) => {
    if (g.spec.members.includes(rank)) groups.set(g.spec.name, new Group(memory, g, rank, i, waiter, status, k, traffic));
  });
  const channels = new Map<string, Channel>();
  layout.channels.forEach((c, i) => {
    if (c.spec.from === rank || c.spec.to === rank) channels.set(`${c.spec.from}->${c.spec.to}`, new Channel(memory, c, i, waiter, status, traffic));
  });
  return {
    rank, control, waiter, status, traffic,
    group(name) {
      const g = groups.get(name);
      if (g === undefined) throw new Error(`internal: rank ${rank} has no group ${name}`);
      return g;
    },
    channel(from, to) {
      const c = channels.get(`${from}->${to}`);
      if (c === undefined) throw new Error(`internal: no channel ${from}->${to} at rank ${rank}`);
      return c;
    },
    inbox() {
      return [...channels.values()].filter((c) => c.to === rank);
    },
  };
}
