import type { ModelSpec, Plan } from "../../spec/types.js";
import { headStage, tiedCopyOnHead } from "../../spec/virtual-stages.js";
import { collective, FREE, type CollectiveCost } from "./collectives.js";
import type { EffectiveLink } from "./placement.js";
import { gradientBytesPerParam } from "./memory.js";

/**
 * A tied output layer on another stage than the embedding keeps its own copy of the word embedding
 * (memory.ts counts it), and once per step, after the last backward and before the optimizer, the two
 * copies' gradients are summed so that both take the same update: an all-reduce over the pair of ranks
 * that hold them (the first stage's and the head's, of the same tp, cp and dp coordinates) of the rank's
 * V/tp x h slice of the gradient, in the gradient's precision. Megatron-LM: finalize_model_grads ->
 * _allreduce_word_embedding_grads (the embedding group); DeepSpeed's pipeline engine:
 * allreduce_tied_weight_gradients (TiedLayerSpec, as Megatron-DeepSpeed ties BLOOM's embedding). Neither
 * overlaps it: it sits between the pipeline's end and the optimizer step.
 * FREE for every other stage and plan (no pipeline, untied, or the head on the embedding's stage: ZB-V).
 */
export function tiedEmbeddingSync(model: ModelSpec, plan: Plan, link: EffectiveLink, stage: number): CollectiveCost {
  if (!tiedCopyOnHead(plan, model.tiedEmbeddings) || (stage !== 0 && stage !== headStage(plan))) return FREE;
  const elements = (model.vocabSize / plan.tp) * model.hiddenSize;
  return collective("all-reduce", 2, elements * gradientBytesPerParam(plan), link);
}
