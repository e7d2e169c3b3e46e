/** The discrete-event simulator: one training step event by event, its timeline and its trace. */
export { simulate, simulateEstimate, simulateInput, simulateJittered, type JitteredSimulation, type PassJitter, type Simulation, type StageSyncs, type StepCache, type SyncGroup, type SyncPoints } from "./simulate.js";
export { simInputFromCosts } from "./from-costs.js";
export { stagePrograms, Pass, type StageProgram } from "./schedules.js";
export { traceChunks, opName } from "./trace.js";
export { runGraph, DeadlockError, type RunResult } from "./engine.js";
export { GraphBuilder, type Graph } from "./graph.js";
export * from "./types.js";
