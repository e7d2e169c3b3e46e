import { type Stats, accessSync, closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { InputError } from "../spec/errors.js";

/**
 * Where an output flag (--trace, --profile) writes, checked before any work is done:
 * - a symbolic link is followed, so the file it points to is written and the link stays;
 * - an existing device, pipe or socket (a FIFO, /dev/null) is written in place, as a stream, and
 *   /dev/stdout or /dev/stderr through this process's own descriptor, after what it printed before;
 * - anything else is a regular file written to a temporary file beside it and renamed over it, so an
 *   interrupted or failed write never leaves half a file under the asked name.
 */
export interface OutputTarget {
  readonly flag: string;
  readonly given: string;
  /** The path written: the link's target for a symbolic link. */
  readonly path: string;
  readonly stream: boolean;
  /** This process's own stdout or stderr (1 or 2), written through its descriptor so the output keeps its order. */
  readonly fd?: number;
}

/** Names of this process's stdout and stderr: writing through the descriptor shares its offset with the report. */
const OWN_STREAMS: Readonly<Record<string, number>> = {
  "/dev/stdout": 1, "/dev/fd/1": 1, "/proc/self/fd/1": 1,
  "/dev/stderr": 2, "/dev/fd/2": 2, "/proc/self/fd/2": 2,
};

function refuse(flag: string, given: unknown, reason: string): InputError {
  return new InputError({ code: "bad-flag", field: flag, value: given, valid: "a file path in an existing, writable directory", reason });
}

function errnoReason(e: unknown, path: string): string {
  const code = (e as NodeJS.ErrnoException).code ?? "unwritable";
  if (code === "ENOENT") return `no such directory: ${dirname(path)}`;
  if (code === "EISDIR") return "is a directory";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENOSPC") return "no space left on the device";
  return code;
}

/** Checks an output path (InputError naming `flag` when it cannot be written); writes nothing. */
export function outputTarget(flag: string, given: unknown): OutputTarget {
  if (typeof given !== "string" || given === "") throw refuse(flag, given, "no file name");
  const asked = resolve(given);
  const own = OWN_STREAMS[asked];
  if (own !== undefined) return { flag, given, path: asked, stream: true, fd: own };
  let st: Stats | undefined;
  try {
    st = statSync(asked); // follows links
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw refuse(flag, given, errnoReason(e, asked));
  }
  if (st?.isDirectory() === true) throw refuse(flag, given, "is a directory");
  if (st !== undefined && !st.isFile()) {
    // a device, pipe or socket (opening the asked path follows any link to it)
    try {
      accessSync(asked, constants.W_OK);
    } catch (e) {
      throw refuse(flag, given, errnoReason(e, asked));
    }
    return { flag, given, path: asked, stream: true };
  }
  // A regular file, or none yet: the file a link points to (a dangling link: where it points).
  const path = st !== undefined ? realpathSync(asked) : lstatOrUndefined(asked)?.isSymbolicLink() === true ? resolve(dirname(asked), readlinkSync(asked)) : asked;
  const dir = dirname(path);
  try {
    if (!statSync(dir).isDirectory()) throw refuse(flag, given, `not a directory: ${dir}`);
    accessSync(dir, constants.W_OK);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw refuse(flag, given, errnoReason(e, path));
  }
  return { flag, given, path, stream: false };
}

/**
 * Whether a target writes where this process's stdout goes: /dev/stdout and its aliases, or the very file
 * stdout is redirected to (`--trace t.json > t.json`); a command whose stdout carries --json refuses it.
 */
export function writesToStdout(t: OutputTarget): boolean {
  if (t.fd === 1) return true;
  try {
    const out = fstatSync(1);
    const st = statSync(t.path);
    return (out.isFile() || out.isFIFO()) && out.dev === st.dev && out.ino === st.ino;
  } catch {
    return false; // no such file yet, or no stdout to compare with
  }
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function tempName(path: string, pid: number): string {
  return join(dirname(path), `.${basename(path)}.${pid}.tmp`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by another user
  }
}

/**
 * Removes the temporary files of earlier writes to `path` whose process is gone: a run stopped by a
 * signal (Ctrl-C during a long --trace write) cannot remove its own, since the write is synchronous and
 * the default action ends the process mid-write. The next write to the same path cleans up.
 */
function removeStaleTemps(path: string): void {
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".tmp")) continue;
    const pid = Number(name.slice(prefix.length, -".tmp".length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    try {
      unlinkSync(tempName(path, pid));
    } catch {
      // another run removed it
    }
  }
}

/**
 * Writes `chunks` to the checked target: in place for a stream (through this process's descriptor for its
 * own stdout or stderr), else through a temporary file renamed over the path. A failure removes the
 * temporary file and is an InputError naming the flag; one left by a killed run is removed by the next.
 * Returns the bytes written.
 */
export function writeOutput(target: OutputTarget, chunks: Iterable<string>): number {
  const { flag, given, path } = target;
  const temp = target.stream ? undefined : tempName(path, process.pid);
  if (temp !== undefined) removeStaleTemps(path);
  let opened: number | undefined;
  try {
    const fd = target.fd ?? (opened = openSync(temp ?? path, "w"));
    let bytes = 0;
    for (const chunk of chunks) bytes += writeSync(fd, chunk);
    if (opened !== undefined) closeSync(opened);
    opened = undefined;
    if (temp !== undefined) renameSync(temp, path);
    return bytes;
  } catch (e) {
    if (opened !== undefined) closeSync(opened);
    if (temp !== undefined) {
      try {
        unlinkSync(temp);
      } catch {
        // nothing was written
      }
    }
    // A reader that stopped early (`--trace /dev/stdout | head`) is not bad input: the binary ends quietly.
    if ((e as NodeJS.ErrnoException).code === "EPIPE") throw e;
    throw refuse(flag, given, errnoReason(e, path));
  }
}
