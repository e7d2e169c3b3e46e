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
  if (degree * stride <= gpusPerNode && gpusPerNode % (degree * stride) === 0) {
    return { degree, stride, membersPerNode: degree, nodes: 1 };
  }
  const membersPerNode = stride >= gpusPerNode ? 1 : Math.max(1, Math.floor(gpusPerNode / stride));
  const perNode = Math.min(membersPerNode, degree);
  return { degree, stride, membersPerNode: perNode, nodes: Math.ceil(degree / perNode) };
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
