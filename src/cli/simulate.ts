import { estimate } from "../planner/cost/estimate.js";
import { InputError } from "../spec/errors.js";
import { resolvePlan } from "../spec/plan.js";
import type { ParsedArgs } from "./args.js";
import { loadContext, planInputFrom } from "./context.js";
import { formatEstimate } from "./format.js";
import type { Io } from "./io.js";

/** `meshplan simulate`: one plan, estimated. */
export function simulateCommand(args: ParsedArgs, io: Io): number {
  if (args.flags.trace !== undefined) {
    throw new InputError({
      code: "unsupported", field: "--trace", value: args.flags.trace,
      valid: "no --trace yet", reason: "trace files need the event simulator, which is not implemented yet",
    });
  }
  const { model, shape } = loadContext(args.flags);
  const plan = resolvePlan(model, shape, planInputFrom(args.flags));
  const result = estimate(model, shape, plan);
  io.out(args.flags.json === true ? JSON.stringify(result, null, 2) : formatEstimate(result));
  return 0;
}
