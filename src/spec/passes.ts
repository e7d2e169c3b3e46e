/**
 * Pass codes of a stage's program (simulator/schedules.ts) and of ZB-V's order (planner/cost/zb-v.ts):
 * forward, backward (input gradient, plus the weight gradient unless the schedule splits it), weight gradient.
 */
export const Pass = { forward: 0, backward: 1, weight: 2 } as const;
export type PassCode = (typeof Pass)[keyof typeof Pass];
