import type * as tf from "@tensorflow/tfjs-core";

/** What every loss returns: a scalar to minimise plus named metrics (TRL metric names). */
export interface LossOutput {
  /** Scalar to minimise (already averaged over the batch). */
  loss: tf.Scalar;
  /** Extra per-batch metrics, keyed by TRL's names, e.g. `rewards/margins`. */
  metrics?: Record<string, tf.Scalar | number>;
}

/**
 * A loss: a named, pure function of tensors. Built-in and user losses implement the same
 * interface and are registered by name in the {@link LossRegistry}.
 */
export interface Loss<TInputs = unknown, TOutput extends LossOutput = LossOutput> {
  /** Registry name, e.g. `"sigmoid"` or `"my-loss"`. */
  readonly name: string;
  /** Compute the loss. Called inside gradient tapes: use tf ops only, no `dataSync`. */
  compute(inputs: TInputs): TOutput;
}

/** Builds a loss from the trainer config that selected it. */
export type LossFactory<TConfig = unknown, TInputs = unknown, TOutput extends LossOutput = LossOutput> = (
  config: TConfig,
) => Loss<TInputs, TOutput>;
