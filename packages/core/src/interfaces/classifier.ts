import type * as tf from "@tensorflow/tfjs-core";
import type { BaseModelConfig, ForwardInputs } from "./model.js";

/** Output of {@link SequenceClassifier.forward}. */
export interface SequenceClassifierOutput {
  /** float32 scores `[B, numLabels]`, pooled at the last real token of each row. The caller disposes it. */
  logits: tf.Tensor2D;
}

/**
 * A sequence classifier as reward-model and PPO trainers see it (HF `*ForSequenceClassification`): a
 * decoder body plus a `score` head, read at the LAST REAL token of each row. The last real token is taken
 * from `attentionMask` (never from pad-id equality, since pad often equals eos), so left and right padding
 * both work. `@prefkit/models` implements it; users may bring their own.
 */
export interface SequenceClassifier {
  /** The HF `config.json` content (with `num_labels`, `pad_token_id`, ...). */
  readonly config: BaseModelConfig;
  /** Outputs per sequence (1 for a reward or value model). */
  readonly numLabels: number;
  /**
   * Scores `[B, numLabels]` at the last real token of each row. Without `positionIds`, positions are
   * `cumsum(attentionMask) − 1` (as TRL's `get_reward`), so padding on either side does not change a
   * row's score. Differentiable and sync-free.
   */
  forward(inputs: ForwardInputs): SequenceClassifierOutput;
  /** Per-token scores `[B, T, numLabels]` (a value model's V per token), same position rule. Differentiable. */
  forwardTokens(inputs: ForwardInputs): tf.Tensor3D;
  /** Every weight by its HF name (`model.*`, `score.weight`). */
  namedParameters(): Map<string, tf.Variable>;
  /** The variables an optimizer should update. */
  trainableVariables(): tf.Variable[];
  /** Write the model in HF layout (config.json, model.safetensors, tokenizer files). */
  savePretrained(dir: string): Promise<void>;
  /** Free every tensor the model owns. */
  dispose(): void;
}

/** True when `x` looks like a {@link SequenceClassifier} (has `forward`, `forwardTokens` and `numLabels`). */
export function isSequenceClassifier(x: unknown): x is SequenceClassifier {
  const m = x as Partial<SequenceClassifier> | null;
  return (
    typeof m === "object" &&
    m !== null &&
    typeof m.forward === "function" &&
    typeof m.forwardTokens === "function" &&
    typeof m.numLabels === "number"
  );
}
