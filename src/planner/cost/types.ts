import type { Plan } from "../../spec/types.js";

/** One evaluated plan: the `Estimate` of the JSON contract (design brief section 5), field for field. */
export interface Estimate {
  readonly model: string;
  readonly cluster: { readonly name: string; readonly gpu: string; readonly gpus: number; readonly gpusPerNode: number };
  readonly plan: Plan;
  readonly memory: {
    readonly peakBytesPerGpu: number;
    readonly capacityBytes: number;
    readonly fits: boolean;
    readonly breakdown: {
      readonly parametersBytes: number;
      readonly gradientsBytes: number;
      readonly optimizerBytes: number;
      readonly activationsBytes: number;
      readonly otherBytes: number;
    };
    /** Extension: the pipeline stage whose GPUs peak highest. */
    readonly worstStage: number;
    /**
     * Extension: true when that peak comes during the optimizer step (16-bit gradients copied to fp32,
     * counted in gradientsBytes; no activations then), absent when it comes in the backward.
     */
    readonly atOptimizerStep?: boolean;
  };
  readonly time: {
    readonly stepSeconds: number;
    /** Exposed seconds on the critical path; they add up to stepSeconds. */
    readonly breakdown: {
      readonly computeSeconds: number;
      readonly tpCommSeconds: number;
      readonly cpCommSeconds: number;
      readonly ppCommSeconds: number;
      readonly dpCommSeconds: number;
      readonly bubbleSeconds: number;
      readonly optimizerSeconds: number;
      /** Extension: exposed expert-parallel all-to-all. */
      readonly epCommSeconds: number;
    };
  };
  readonly throughput: {
    readonly tokensPerSecond: number;
    readonly modelTflopsPerGpu: number;
    readonly hardwareTflopsPerGpu: number;
    readonly mfu: number;
    readonly hfu: number;
  };
  readonly pipeline: { readonly bubbleFraction: number; readonly microBatches: number };
  readonly communication: {
    readonly bytesPerGpuPerStep: { readonly tp: number; readonly cp: number; readonly pp: number; readonly dp: number; readonly ep: number };
  };
}
