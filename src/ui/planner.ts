import { builtFileExists } from "./built-file.js";
import { Worker } from "node:worker_threads";
import { planJob, type PlanRequest, type PlanUpdate } from "./plan-job.js";

/**
 * Where the explorer's searches run. `request` supersedes any earlier request: its updates stop, and
 * only the newest request's updates reach `onUpdate`. Both drivers run the same jobs (plan-job.ts).
 */
export interface Planner {
  request(req: PlanRequest, onUpdate: (u: PlanUpdate) => void): void;
  close(): void;
}

/** Remembers the final (refined) update of recent requests, so going back to a state is instant. */
class ResultCache {
  private readonly map = new Map<string, PlanUpdate>();
  constructor(private readonly size: number) {}
  static key(req: PlanRequest): string {
    return JSON.stringify([req.model, req.shape, req.pinned, req.top]);
  }
  get(key: string): PlanUpdate | undefined {
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.map.delete(key); // most recently used last
      this.map.set(key, hit);
    }
    return hit;
  }
  set(key: string, u: PlanUpdate): void {
    if (this.size <= 0) return;
    this.map.delete(key);
    this.map.set(key, u);
    while (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
  }
}

export interface PlannerOptions {
  /** Re-planned states kept for instant return (default 32; 0 disables, e.g. for benchmarks). */
  readonly cacheSize?: number;
}

/** Wraps a driver with the cache and the "only the newest request" rule. */
function withCache(start: (req: PlanRequest) => void, options: PlannerOptions) {
  const cache = new ResultCache(options.cacheSize ?? 32);
  let latest = -1;
  let latestKey = "";
  let listener: (u: PlanUpdate) => void = () => {};
  return {
    deliver(u: PlanUpdate): void {
      if (u.id !== latest) return;
      if (u.phase !== "quick") cache.set(latestKey, u);
      listener(u);
    },
    request(req: PlanRequest, onUpdate: (u: PlanUpdate) => void): void {
      latest = req.id;
      latestKey = ResultCache.key(req);
      listener = onUpdate;
      const hit = cache.get(latestKey);
      if (hit !== undefined) {
        const u = { ...hit, id: req.id };
        setImmediate(() => this.deliver(u));
        return;
      }
      start(req);
    },
  };
}

/** Runs the searches on this thread, yielding to the event loop between the two (tests; no built worker). */
export function inlinePlanner(options: PlannerOptions = {}): Planner {
  let current = -1;
  const front = withCache((req) => {
    const job = planJob(req, () => current === req.id);
    const step = () => {
      if (current !== req.id) return; // superseded
      const next = job.next();
      if (next.done === true) return;
      front.deliver(next.value);
      setImmediate(step);
    };
    setImmediate(step);
  }, options);
  return {
    request(req, onUpdate) {
      current = req.id;
      front.request(req, onUpdate);
    },
    close: () => {
      current = -1;
    },
  };
}

const WORKER_FILE = new URL("./plan-worker.js", import.meta.url);

/** True where the compiled worker script exists (the built package; not the TypeScript sources). */
export function workerAvailable(): boolean {
  return builtFileExists(WORKER_FILE);
}

/**
 * Runs the searches on two worker threads, so the UI thread only renders and reads keys: one for the
 * quick analytic ranking, one for the simulator's. A new request goes to the quick worker alone, and to
 * the refining one once the quick list is out, so the new list never shares a core with slower work.
 * The newest request's id sits in shared memory, where the refining search reads it before every
 * simulation: superseded work stops within one simulation instead of running to its end.
 */
export function workerPlanner(options: PlannerOptions = {}): Planner {
  const current = new Int32Array(new SharedArrayBuffer(4));
  const spawn = (job: "quick" | "refine") => new Worker(WORKER_FILE, { workerData: { job, current } });
  const quick = spawn("quick");
  const refine = spawn("refine");
  let failed: string | undefined;
  let pending: PlanRequest | undefined;
  const front = withCache((req) => {
    pending = req;
    quick.postMessage(req);
  }, options);
  quick.on("message", (u: PlanUpdate) => {
    if (u.phase === "quick" && pending?.id === u.id) refine.postMessage(pending);
    front.deliver(u);
  });
  refine.on("message", (u: PlanUpdate) => front.deliver(u));
  for (const w of [quick, refine]) {
    w.on("error", (e) => {
      failed = `planner worker failed: ${e.message}`;
      front.deliver({ id: Atomics.load(current, 0), phase: "error", message: failed });
    });
  }
  return {
    request(req, onUpdate) {
      Atomics.store(current, 0, req.id);
      if (failed !== undefined) {
        const message = failed;
        setImmediate(() => onUpdate({ id: req.id, phase: "error", message }));
        return;
      }
      front.request(req, onUpdate);
    },
    close: () => {
      Atomics.store(current, 0, -1);
      void quick.terminate();
      void refine.terminate();
    },
  };
}

/** The worker where it exists, else the inline driver. */
export function createPlanner(options: PlannerOptions = {}): Planner {
  return workerAvailable() ? workerPlanner(options) : inlinePlanner(options);
}
