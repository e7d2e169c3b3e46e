import { fitPlan } from "../executor/measure/fit-plan.js";
import { validateForExecutor } from "../executor/validate.js";
import { InputError } from "../spec/errors.js";
import { parseModel } from "../spec/model.js";
import { FieldReader, POSITIVE, POSITIVE_INT, type NumberRule } from "../spec/read.js";

/**
 * Every field of a device profile (DeviceProfile, src/executor/measure/profile.ts) as `meshplan calibrate`
 * writes it, checked on read so that an edited or truncated profile is bad input naming the field, not an
 * internal error in the simulator or a failure inside a rank. Optional sections (older profiles lack them)
 * may be left out, but not set to null or to anything else. Fields this version does not read (older
 * profiles kept a few that were since dropped) are left alone; every number anywhere in the file must still
 * be finite and not negative (a profile holds rates, times, sizes and spreads).
 */
export function checkProfileFields(json: unknown, file: string): void {
  const r = FieldReader.of(json, file);
  const machine = r.child("machine");
  machine.number("cpus", POSITIVE_INT);
  for (const key of ["cpuModel", "node", "platform"]) machine.string(key);
  r.string("backend");
  r.string("measuredAt");
  list(r, "matmul", (m) => {
    m.number("n", POSITIVE_INT);
    m.number("seconds", POSITIVE);
    m.number("flopsPerSecond", POSITIVE);
  });
  for (const key of ["peakFlopsPerSecond", "elementwiseBytesPerSecond", "memcpyBytesPerSecond", "collectiveBytesPerSecond"]) r.number(key, POSITIVE);
  for (const key of ["opOverheadSeconds", "collectiveLatencySeconds"]) r.number(key, NOT_NEGATIVE);
  r.optionalNumber("optimizerBytesPerSecond", POSITIVE);
  section(r, "loss", (l) => {
    l.number("overheadSeconds", NOT_NEGATIVE);
    l.number("bytesPerSecond", POSITIVE);
  });
  for (const key of ["embedding", "moeRouting"]) section(r, key, checkMeasuredPassCost);
  list(r, "fit", (f) => {
    f.string("shape");
    f.number("measuredSeconds", POSITIVE);
    f.number("fittedSeconds", POSITIVE);
  });
  section(r, "concurrency", (c) => {
    c.number("ranks", POSITIVE_INT);
    for (const key of ["aloneSeconds", "concurrentSeconds", "slowdown"]) c.number(key, POSITIVE);
    c.optionalNumber("fittedSeconds", POSITIVE);
    section(c, "probe", (p) => checkProbe(p, file));
  });
  section(r, "passJitter", (j) => {
    j.string("shape");
    j.optionalNumber("ranks", POSITIVE_INT);
    checkSpreads(j);
    section(j, "fewerRanks", (f) => {
      f.number("ranks", POSITIVE_INT);
      checkSpreads(f);
    });
  });
  section(r, "syncWaits", (w) => {
    w.number("members", { integer: true, min: 2 });
    w.number("ranks", POSITIVE_INT);
    checkWaitPoints(w);
    section(w, "fewerRanks", (f) => {
      f.number("ranks", POSITIVE_INT);
      checkWaitPoints(f);
    });
  });
  section(r, "layerPasses", (l) => {
    const shares = l.child("shares");
    const sum = ["forward", "backwardInput", "backwardWeight"].reduce((a, key) => a + shares.number(key, { above: 0, max: 1 }), 0);
    if (Math.abs(sum - 1) > 1e-6) {
      throw new InputError({ code: "out-of-range", file, field: shares.path("forward"), value: sum, valid: `shares of forward, backwardInput and backwardWeight summing to 1 ${AS_WRITTEN}`, reason: `they sum to ${sum}` });
    }
    list(l, "measured", (m) => {
      m.string("shape");
      for (const key of ["forwardSeconds", "backwardInputSeconds", "backwardWeightSeconds"]) m.number(key, POSITIVE);
    });
  });
  section(r, "weightFirstUse", (w) => {
    w.number("secondsPerParam", NOT_NEGATIVE);
    list(w, "measured", (m) => {
      m.string("shape");
      m.number("params", POSITIVE_INT);
      m.number("seconds", NOT_NEGATIVE);
    });
  });
  const walk = (value: unknown, path: string): void => {
    if (typeof value === "number" && !(Number.isFinite(value) && value >= 0)) {
      throw new InputError({ code: "out-of-range", file, field: path, value, valid: "a finite number >= 0 (run meshplan calibrate again)" });
    }
    if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, path === "" ? k : Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`);
    }
  };
  walk(json, "");
}

const NOT_NEGATIVE: NumberRule = { min: 0 };
const AS_WRITTEN = "as meshplan calibrate writes it (run it again)";

/** An optional object: absent, or an object whose fields `check` reads; null or another type is an error. */
function section(r: FieldReader, key: string, check: (child: FieldReader) => void): void {
  const value = r.raw(key);
  if (value === undefined) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InputError({ code: "bad-type", file: r.file, field: r.path(key), value, valid: `an object ${AS_WRITTEN}, or the field left out` });
  }
  check(r.child(key));
}

/** A pass-time spread measurement (PassSpreads): its pass count and each kind's mean and log-sd. */
function checkSpreads(j: FieldReader): void {
  j.number("samples", POSITIVE_INT);
  for (const pass of ["forward", "backward"]) {
    const s = j.child(pass);
    s.number("meanSeconds", POSITIVE);
    s.number("logSd", NOT_NEGATIVE);
  }
}

/** A measured pass cost (stats.ts MeasuredPassCost): its fixed time, its rate and the points they were fitted to. */
function checkMeasuredPassCost(c: FieldReader): void {
  c.number("overheadSeconds", NOT_NEGATIVE);
  c.number("bytesPerSecond", POSITIVE);
  list(c, "measured", (m) => {
    m.string("shape");
    m.number("bytes", POSITIVE);
    m.number("seconds", POSITIVE);
  });
}

/** The measured waits at collectives (SyncWaitPoint), each after a segment of work, of a group where named. */
function checkWaitPoints(w: FieldReader): void {
  list(w, "points", (p) => {
    p.number("segmentSeconds", NOT_NEGATIVE);
    p.number("waitSeconds", NOT_NEGATIVE);
    if (p.raw("group") !== undefined) p.oneOf("group", ["tp", "cp", "ep"]);
  });
}

/** A non-empty list of objects, each read by `check`. */
function list(r: FieldReader, key: string, check: (item: FieldReader) => void): void {
  const value = r.raw(key);
  if (!Array.isArray(value) || value.length === 0) {
    throw new InputError({ code: "bad-type", file: r.file, field: r.path(key), value, valid: `a non-empty list, ${AS_WRITTEN}` });
  }
  value.forEach((item, i) => check(FieldReader.of(item, r.file, `${r.path(key)}[${i}]`)));
}

/**
 * The speed probe (concurrency.probe): a model the executor runs, and the one-rank plan calibrate writes
 * for it (fit-plan.ts), which every rank of a run builds and steps (run/speed-probe.ts).
 */
function checkProbe(p: FieldReader, file: string): void {
  p.optionalString("shape");
  const model = within(file, p.path("model"), () => parseModel(p.raw("model"), file, "speed probe"));
  const plan = p.child("plan");
  const expected = fitPlan(model.layers, model.seqLen, plan.number("globalBatch", POSITIVE_INT));
  const given = p.raw("plan") as Record<string, unknown>;
  for (const key of new Set([...Object.keys(expected), ...Object.keys(given)])) {
    const want = (expected as unknown as Record<string, unknown>)[key];
    if (JSON.stringify(given[key]) === JSON.stringify(want)) continue;
    throw new InputError({
      code: "out-of-range", file, field: plan.path(key), value: given[key],
      valid: want === undefined ? "no such field in the speed probe's plan" : `${JSON.stringify(want)}: the probe is the one-rank step calibrate writes for its model (run meshplan calibrate again)`,
    });
  }
  within(file, p.path("model"), () => validateForExecutor(model, expected));
}

/** Runs `read` on a part of the profile; its InputError names the field under `prefix`, in `file`. */
function within<T>(file: string, prefix: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    // parseModel names the model's fields, validateForExecutor "model" or "model.headDim" for them.
    const field = e.field === "(top level)" || e.field === "model" ? prefix : `${prefix}.${e.field.replace(/^model\./, "")}`;
    throw e.renamed(field, file);
  }
}
