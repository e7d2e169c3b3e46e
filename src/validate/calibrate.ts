import { writeFileSync } from "node:fs";
import { builtinNames, clusterLoader, loadModel } from "../cli/catalog.js";
import type { ClusterSpec } from "../spec/types.js";
import { calibratedCluster, type CalibrationFile } from "./calibration.js";
import { CALIBRATION_FILE, readMeasurements } from "./files.js";
import { comparable, DEFAULT_FIT, fitScales, heldOutFolds, PRIOR_WEIGHT } from "./fit.js";
import { prepareRecords } from "./predict.js";
import { buildReport } from "./report.js";

/**
 * The calibration script (`npm run calibrate`): fits the calibration layer on every published run that
 * meshplan can reproduce, fits one held-out fold per source, and writes models/hardware/calibration.json
 * with what was fitted, on which records, when, and the errors. The priors in models/hardware/** are
 * never changed. Deterministic apart from the date.
 */
const METHOD =
  "Seven scale factors on the sourced priors (matmul, attention, fp8Matmul, matmulOverhead, memoryBandwidth, link, overlap; " +
  "src/validate/calibration.ts), shared by all GPUs, fitted by Nelder-Mead in log space to the mean absolute log " +
  `error of throughput with every source weighted equally, plus ${PRIOR_WEIGHT} * sum(log scale)^2 towards the priors ` +
  "(src/validate/fit.ts). Held out by source: one fold per source, fitted on the other sources' records only.";

function main(): void {
  const log = (text: string) => process.stderr.write(`${text}\n`);
  const records = readMeasurements();
  const builtins = builtinNames("model").map(loadModel);
  const clusters = new Map<string, ClusterSpec>();
  const prepared = prepareRecords(records, builtins, clusterLoader(clusters));
  const compared = comparable(prepared.prepared);
  log(`calibrate: ${compared.length} compared records from ${new Set(compared.map((c) => c.case.source)).size} sources; fitting all`);
  const all = fitScales(compared, DEFAULT_FIT);
  const folds = heldOutFolds(prepared.prepared, DEFAULT_FIT, (source) => log(`calibrate: fold without ${source}`));
  const file: CalibrationFile = {
    fittedAt: new Date().toISOString().slice(0, 10),
    method: METHOD,
    scales: all.scales,
    records: compared.map((c) => c.case.id),
    sources: [...new Set(compared.map((c) => c.case.source))],
    folds,
  };
  const report = buildReport(prepared, file);
  const calibratedGpus = Object.fromEntries([...clusters.values()].map((spec) => {
    const c = calibratedCluster(spec, all.scales);
    return [spec.name, {
      gpu: spec.gpu.name,
      prior: { ...spec.gpu.efficiency, intraNodeBusBandwidthEfficiency: spec.intraNode.busBandwidthEfficiency, interNodeBusBandwidthEfficiency: spec.interNode.busBandwidthEfficiency },
      calibrated: { ...c.gpu.efficiency, intraNodeBusBandwidthEfficiency: c.intraNode.busBandwidthEfficiency, interNodeBusBandwidthEfficiency: c.interNode.busBandwidthEfficiency },
    }];
  }));
  const out = {
    ...file,
    objective: all.objective,
    errors: {
      note: "absolute relative error of throughput (predicted / measured - 1): count, median, p90 (nearest rank), max",
      calibratedInSample: report.summary.model,
      heldOut: report.summary.heldOut?.model ?? null,
      priorsOnly: report.summary.prior,
      mfuBaselineInSample: report.summary.baseline,
      mfuBaselineHeldOut: report.summary.heldOut?.baseline ?? null,
    },
    calibratedGpus,
  };
  writeFileSync(CALIBRATION_FILE(), `${JSON.stringify(out, null, 2)}\n`);
  const o = (x: { overall: { median: number; p90: number; max: number } } | null | undefined) =>
    x === null || x === undefined ? "-" : `median ${(100 * x.overall.median).toFixed(1)}%, p90 ${(100 * x.overall.p90).toFixed(1)}%, max ${(100 * x.overall.max).toFixed(1)}%`;
  log(`calibrate: wrote ${CALIBRATION_FILE()}`);
  log(`  held out:              ${o(out.errors.heldOut)}`);
  log(`  MFU baseline held out: ${o(out.errors.mfuBaselineHeldOut)}`);
}

main();
