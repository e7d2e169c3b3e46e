import { InputError } from "../spec/errors.js";
import { checkCommandFlags, helpText, parseArgs, planFieldAsFlag, type CommandName, type ParsedArgs } from "./args.js";
import type { Io } from "./io.js";
type Command = (args: ParsedArgs, io: Io) => number | Promise<number>;

/** Each command's module is loaded only when it runs, so that `plan` does not pay for the executor's start-up. */
const COMMANDS: Record<CommandName, () => Promise<Command>> = {
  plan: async () => (await import("./plan.js")).planCommand,
  simulate: async () => (await import("./simulate.js")).simulateCommand,
  explore: async () => (await import("./explore.js")).exploreCommand,
  models: async () => (await import("./models.js")).modelsCommand,
  execute: async () => (await import("./execute.js")).executeCommand,
  calibrate: async () => (await import("./calibrate.js")).calibrateCommand,
  validate: async () => (await import("./validate.js")).validateCommand,
};

/** Runs one command line; returns the exit code. Bad input prints one line on stderr and returns 2. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  try {
    const args = parseArgs(argv);
    checkCommandFlags(args);
    if (args.flags.help === true || args.command === undefined || args.command === "help") {
      io.out(helpText(args.command));
      return args.command === undefined && args.flags.help !== true ? 2 : 0;
    }
    const command = await COMMANDS[args.command as CommandName]();
    return await command(args, io);
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`meshplan: ${planFieldAsFlag(e).message}`);
      return 2;
    }
    throw e;
  }
}
