#!/usr/bin/env node
// The binary is a thin shell: it hands argv and the process streams to the CLI library.
import { run } from "../dist/src/cli/main.js";

// A reader that stops early (`meshplan validate | head`) closes the pipe: stop quietly, as other tools do,
// with the status a shell gives a writer its pipe has closed (128 + SIGPIPE).
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e) => {
    if (e.code === "EPIPE") process.exit(141);
    throw e;
  });
}

const io = {
  out: (text) => process.stdout.write(text + "\n"),
  err: (text) => process.stderr.write(text + "\n"),
};
try {
  process.exitCode = await run(process.argv.slice(2), io);
} catch (e) {
  // A closed pipe met by a direct write (`simulate --trace /dev/stdout | head`): as above.
  if (e?.code === "EPIPE") process.exit(141);
  // A bug, not bad input: say so in one line; MESHPLAN_DEBUG=1 shows the stack.
  io.err(`meshplan: internal error: ${e instanceof Error ? e.message : String(e)} (please report; MESHPLAN_DEBUG=1 shows details)`);
  if (process.env.MESHPLAN_DEBUG === "1" && e instanceof Error) io.err(e.stack ?? "");
  process.exitCode = 70;
}
