import { InputError } from "../spec/errors.js";
import { helpText, parseArgs, type ParsedArgs } from "./args.js";
import type { Io } from "./io.js";
import { calibrateCommand } from "./calibrate.js";
import { executeCommand } from "./execute.js";
import { modelsCommand } from "./models.js";
import { planCommand } from "./plan.js";
import { simulateCommand } from "./simulate.js";
import { validateCommand } from "./validate.js";

const COMMANDS: Record<string, (args: ParsedArgs, io: Io) => number | Promise<number>> = {
  plan: planCommand,
  simulate: simulateCommand,
  models: modelsCommand,
  execute: executeCommand,
  calibrate: calibrateCommand,
  validate: validateCommand,
};

/** Runs one command line; returns the exit code. Bad input prints one line on stderr and returns 2. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.flags.help === true || args.command === undefined || args.command === "help") {
      io.out(helpText());
      return args.command === undefined && args.flags.help !== true ? 2 : 0;
    }
    const command = COMMANDS[args.command];
    if (command === undefined) {
      const known = ["explore"];
      const reason = known.includes(args.command) ? "not implemented yet" : "unknown command";
      throw new InputError({ code: "bad-flag", field: "command", value: args.command, valid: Object.keys(COMMANDS).join(", "), reason });
    }
    return await command(args, io);
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`meshplan: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
