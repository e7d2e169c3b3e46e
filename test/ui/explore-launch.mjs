#!/usr/bin/env node
// Stands in for bin/meshplan.js (`explore-launch.mjs explore ARGS`) in the end-to-end test while
// src/cli/main.ts does not register the explore command: the built dist/, the same streams and exit codes.
import { parseArgs } from "../../dist/src/cli/args.js";
import { exploreCommand } from "../../dist/src/cli/explore.js";

const io = {
  out: (text) => process.stdout.write(text + "\n"),
  err: (text) => process.stderr.write(text + "\n"),
};
try {
  process.exitCode = await exploreCommand(parseArgs(process.argv.slice(2)), io);
} catch (e) {
  io.err(`meshplan: internal error: ${e instanceof Error ? e.stack : String(e)}`);
  process.exitCode = 70;
}
