import type { ClusterShape, LinkSpec, Plan } from "../../spec/types.js";
import { zeroShardRanks } from "./memory.js";

/**
 * Where each parallel group's ranks sit. Ranks are laid out with tp varying fastest, then cp, dp and pp
 * (Megatron-LM's order, design brief section 3), so a group of degree d has stride equal to the product
 * of the degrees that vary faster; expert-parallel groups are carved from dp*cp with stride tp.
 */
/**
 * `edp` is the data-parallel group of expert weights: dp*cp/ep ranks, stride tp*ep. Under hybrid sharding
 * (plan.shardGroup) `dp` is one shard group, the first shardGroup of the dp*cp ranks, and `dpr` the
 * replicas of one shard: dp*cp/shardGroup ranks, stride tp*shardGroup.
 */
export type GroupKind = "tp" | "cp" | "dp" | "dpr" | "pp" | "ep" | "edp";

export interface GroupPlacement {
  readonly degree: number;
  readonly stride: number;
  /** Members of one group on the same node. */
  readonly membersPerNode: number;
  readonly nodes: number;
}

export function groupPlacement(kind: GroupKind, plan: Plan, gpusPerNode: number): GroupPlacement {
  const { degree, stride } = groupShape(kind, plan);
  const span = degree * stride;
  if (span <= gpusPerNode && gpusPerNode % span === 0) {
    return { degree, stride, membersPerNode: degree, nodes: 1 };
  }
  if (stride % gpusPerNode === 0) return { degree, stride, membersPerNode: 1, nodes: degree };
  if (span % gpusPerNode === 0 && gpusPerNode % stride === 0) {
    const perNode = gpusPerNode / stride;
    return { degree, stride, membersPerNode: perNode, nodes: degree / perNode };
  }
  // Groups that do not tile the nodes (6-GPU nodes with tp 4): some straddle a node boundary, and the
  // slowest group sets the collective's pace.
  return { degree, stride, ...straddlingWorst(degree, stride, gpusPerNode) };
}

const worstCache = new Map<string, { membersPerNode: number; nodes: number }>();

/**
 * The worst-placed group when groups of `degree` ranks, `stride` apart, do not tile nodes of
 * `gpusPerNode`: the one spanning the most nodes and, among those, with the fewest members on one of its
 * nodes (the node whose NICs its ring shares). The layout repeats every lcm(gpusPerNode, degree*stride)
 * ranks, so one period's groups are all the cases.
 */
function straddlingWorst(degree: number, stride: number, gpusPerNode: number): { membersPerNode: number; nodes: number } {
  const key = `${degree} ${stride} ${gpusPerNode}`;
  const held = worstCache.get(key);
  if (held !== undefined) return held;
  const span = degree * stride;
  let worst = { membersPerNode: degree, nodes: 1 };
  for (let block = 0; block < lcm(gpusPerNode, span) / span; block++) {
    for (let offset = 0; offset < stride; offset++) {
      const perNode = new Map<number, number>();
      for (let i = 0; i < degree; i++) {
        const node = Math.floor((block * span + offset + i * stride) / gpusPerNode);
        perNode.set(node, (perNode.get(node) ?? 0) + 1);
      }
      const nodes = perNode.size;
      const fewest = Math.min(...perNode.values());
      if (nodes > worst.nodes || (nodes === worst.nodes && fewest < worst.membersPerNode)) worst = { membersPerNode: fewest, nodes };
    }
  }
  worstCache.set(key, worst);
  return worst;
}

function lcm(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return (a / x) * b;
}

function groupShape(kind: GroupKind, plan: Plan): { degree: number; stride: number } {
  switch (kind) {
    case "tp":
      return { degree: plan.tp, stride: 1 };
    case "cp":
      return { degree: plan.cp, stride: plan.tp };
    case "dp":
      // Gradients are reduced over dp*cp: context-parallel ranks hold the same weights.
      return { degree: zeroShardRanks(plan), stride: plan.tp };
    case "dpr":
      return { degree: (plan.dp * plan.cp) / zeroShardRanks(plan), stride: plan.tp * zeroShardRanks(plan) };
    case "ep":
      return { degree: plan.ep, stride: plan.tp };
    case "edp":
      return { degree: (plan.dp * plan.cp) / plan.ep, stride: plan.tp * plan.ep };
    case "pp":
      return { degree: plan.pp, stride: plan.tp * plan.cp * plan.dp };
  }
}

/** The bandwidth and latency a group's collective sees. */
export interface EffectiveLink {
  readonly name: string;
  /** Achieved bus bandwidth per GPU per direction. */
  readonly bytesPerSecond: number;
  readonly latencySeconds: number;
  readonly crossesNodes: boolean;
}

/**
 * Inside a node a group uses the intra-node fabric. Across nodes NCCL runs one ring channel per NIC, so
 * a group with k members per node drives k NICs: the bus bandwidth is the smaller of the intra-node link
 * and k times the per-GPU network bandwidth (NCCL's ring algorithm; see doc/cost-model.md), the line rate
 * capped where the cluster says one group's ring drives less (LinkSpec.maxBytesPerSecondPerGroup).
 */
export function effectiveLink(placement: GroupPlacement, shape: ClusterShape): EffectiveLink {
  const intra = shape.spec.intraNode;
  const intraBw = achievedBytesPerSecond(intra);
  if (placement.nodes <= 1) {
    return { name: intra.link, bytesPerSecond: intraBw, latencySeconds: intra.latencySeconds, crossesNodes: false };
  }
  const inter = shape.spec.interNode;
  const interBw = achievedBytesPerSecond(inter, Math.min(inter.bytesPerSecondPerGpu * placement.membersPerNode, inter.maxBytesPerSecondPerGroup ?? Infinity));
  return {
    name: inter.link,
    bytesPerSecond: Math.min(intraBw, interBw),
    latencySeconds: inter.latencySeconds,
    crossesNodes: true,
  };
}

/** The NCCL bus bandwidth a link achieves on `lineRate` bytes per second (default: one GPU's share). */
export function achievedBytesPerSecond(link: LinkSpec, lineRate = link.bytesPerSecondPerGpu): number {
  return lineRate * link.busBandwidthEfficiency;
}
