import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

/**
 * Starts a worker thread running src/executor/run/worker. Built, that is dist/.../worker.js. Run from the
 * TypeScript sources (vitest, or a dev script), worker threads do not inherit the test runner's
 * transform, so the worker first registers a module loader hook (node:module register, Node >= 20.6)
 * that strips types with rolldown's transformer (a dependency of vite, hence of vitest) and maps the
 * `.js` import specifiers of the sources to their `.ts` files.
 */
const SELF = import.meta.url;
const FROM_SOURCES = SELF.endsWith(".ts");

function loaderSource(transformUrl: string): string {
  return `
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { transformSync } from ${JSON.stringify(transformUrl)};
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (parent !== undefined && parent.endsWith(".ts") && specifier.endsWith(".js") && (specifier.startsWith(".") || specifier.startsWith("file:"))) {
    const url = new URL(specifier, parent);
    if (!existsSync(fileURLToPath(url))) return next(url.href.slice(0, -3) + ".ts", context);
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (!url.endsWith(".ts")) return next(url, context);
  const file = fileURLToPath(url);
  const out = transformSync(file, readFileSync(file, "utf8"), { lang: "ts" });
  if (out.errors && out.errors.length > 0) throw new Error(file + ": " + out.errors.map((e) => e.message).join("; "));
  return { format: "module", source: out.code, shortCircuit: true };
}`;
}

function dataUrl(source: string): string {
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

let bootstrap: URL | undefined;

function sourceBootstrap(): URL {
  if (bootstrap !== undefined) return bootstrap;
  let transformUrl: string;
  try {
    transformUrl = pathToFileURL(createRequire(SELF).resolve("rolldown/utils")).href;
  } catch {
    throw new Error("running the executor from its TypeScript sources needs rolldown (installed with vitest); build with `npm run build` and run dist/ instead");
  }
  const entry = new URL("./worker.ts", SELF).href;
  const source = `import { register } from "node:module";
register(${JSON.stringify(dataUrl(loaderSource(transformUrl)))});
await import(${JSON.stringify(entry)});`;
  bootstrap = new URL(dataUrl(source));
  return bootstrap;
}

/** A worker whose stdout and stderr the caller reads (nothing a rank prints reaches our stdout). */
export function spawnWorker(workerData: unknown, transferList: readonly Transferable[] = []): Worker {
  const url = FROM_SOURCES ? sourceBootstrap() : new URL("./worker.js", SELF);
  return new Worker(url, { workerData, transferList: [...transferList] as never, stdout: true, stderr: true });
}
