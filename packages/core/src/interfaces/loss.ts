import type * as tf from "@tensorflow/tfjs-core";
import { ConfigError } from "../errors/index.js";

/**
 * Per-row implicit rewards a loss may return. The trainer turns them into TRL's standard metrics
 * (`rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`), so a custom loss gets
 * them for free.
 */
export interface LossRewards {
  /** Reward of each chosen (desirable) row, shape [B]. */
  chosen: tf.Tensor1D;
  /** Reward of each rejected (undesirable) row, shape [B']. */
  rejected: tf.Tensor1D;
}

/** What every loss returns: a scalar to minimise plus named metrics (TRL metric names). */
export interface LossOutput {
  /** Scalar to minimise (already averaged over the batch). */
  loss: tf.Scalar;
  /** Extra per-batch metrics, keyed by TRL's names, e.g. `nll_loss`. */
  metrics?: Record<string, tf.Scalar | number>;
  /** Implicit rewards; when present the trainer logs TRL's `rewards/*` metrics from them. */
  rewards?: LossRewards;
}

/**
 * The inputs of a loss on preference pairs (DPO and its family, ORPO, CPO, user losses): summed completion
 * log-probs of the policy and the reference, shape [B], plus extras some losses need. The preference task
 * computes them from a batch of tokenised pairs; reference-free losses ({@link Loss.needsReference} false)
 * get zeros as reference log-probs.
 */
export interface PreferenceInputs {
  /** Σ log πθ over the chosen completion tokens, [B]. */
  chosenLogps: tf.Tensor1D;
  /** Σ log πθ over the rejected completion tokens, [B]. */
  rejectedLogps: tf.Tensor1D;
  /** Σ log πref over the chosen completion tokens, [B] (zeros for reference-free losses). */
  refChosenLogps: tf.Tensor1D;
  /** Σ log πref over the rejected completion tokens, [B] (zeros for reference-free losses). */
  refRejectedLogps: tf.Tensor1D;
  /** Chosen completion lengths in tokens, [B]. */
  chosenLengths: tf.Tensor1D;
  /** Rejected completion lengths in tokens, [B]. */
  rejectedLengths: tf.Tensor1D;
  /** Token-mean negative log-likelihood of the chosen completions over the batch (a scalar). */
  chosenNll: tf.Scalar;
  /** Token-mean negative log-likelihood of the chosen rows' prompt AND completion tokens (ORPO's NLL term). */
  chosenSequenceNll: tf.Scalar;
  /**
   * WPO's per-pair weights w_c·w_r (`useWeighting`), [B], without gradient; absent when off. The built-in DPO
   * losses multiply their per-pair losses by them (TRL's `use_weighting`); a custom loss applies them itself.
   */
  policyWeights?: tf.Tensor1D;
}

/** The inputs of a loss on single sequences (SFT): next-token log-probs of the scored tokens. */
export interface CompletionInputs {
  /** Σ log πθ over each row's loss tokens, [B]. */
  logps: tf.Tensor1D;
  /** Loss tokens per row, [B]. */
  lengths: tf.Tensor1D;
  /** Token-mean negative log-likelihood over the batch's loss tokens (a scalar). */
  nll: tf.Scalar;
}

/** The inputs of a loss on scored pairs (reward modelling): the classifier's score of each sequence. */
export interface PairScoreInputs {
  /** Score of each chosen sequence, [B]. */
  chosenScores: tf.Tensor1D;
  /** Score of each rejected sequence, [B]. */
  rejectedScores: tf.Tensor1D;
  /** Per-pair margin from the dataset's `margin` column, [B], or null. */
  margins: tf.Tensor1D | null;
}

/**
 * The inputs of a loss on unpaired feedback (KTO): each row a completion labelled desirable or not, with its
 * summed log-probs under policy and reference, plus the batch KL pass over mismatched pairs.
 */
export interface UnpairedInputs {
  /** Σ log πθ over each row's completion, [B]. */
  logps: tf.Tensor1D;
  /** Σ log πref over each row's completion, [B]. */
  refLogps: tf.Tensor1D;
  /** Per row: true for desirable, false for undesirable. */
  labels: readonly boolean[];
  /** Σ log πθ over the mismatched (prompt, other completion) pairs, [B], without gradient; absent when not needed. */
  klLogps?: tf.Tensor1D;
  /** Σ log πref over the mismatched pairs, [B]; absent when not needed. */
  refKlLogps?: tf.Tensor1D;
}

/**
 * Every batch kind a loss can declare, with the inputs the trainer hands it. Packages that add a kind
 * (`@prefkit/losses` adds `"rollout"`) extend this interface by declaration merging:
 *
 * ```ts
 * declare module "@prefkit/core" { interface LossInputsByKind { rollout: RolloutInputs } }
 * ```
 */
export interface LossInputsByKind {
  /** Preference pairs (DPO family, ORPO, CPO): {@link PreferenceInputs}. */
  preference: PreferenceInputs;
  /** Single sequences (SFT): {@link CompletionInputs}. */
  completion: CompletionInputs;
  /** Scored pairs (reward models): {@link PairScoreInputs}. */
  "pair-scores": PairScoreInputs;
  /** Unpaired feedback (KTO): {@link UnpairedInputs}. */
  unpaired: UnpairedInputs;
}

/** A batch kind: the key of {@link LossInputsByKind} a loss declares. */
export type BatchKind = keyof LossInputsByKind & string;

/**
 * A loss: a named, pure function of tensors that declares what batch it trains on. Built-in and user
 * losses implement the same interface and are registered by name in the {@link LossRegistry}; a method's
 * task (the preference task for `"preference"`, …) computes the inputs and the trainer runs the loop.
 */
export interface Loss<TInputs = unknown, TOutput extends LossOutput = LossOutput> {
  /** Registry name, e.g. `"sigmoid"` or `"my-loss"`. */
  readonly name: string;
  /** The batch kind it trains on (see {@link LossInputsByKind}); checked against the method's task. */
  readonly batchKind?: string;
  /** False for reference-free losses (ORPO, CPO, SimPO): the task then runs no reference pass. Default true. */
  readonly needsReference?: boolean;
  /** Compute the loss. Called inside gradient tapes: use tf ops only, no `dataSync`. */
  compute(inputs: TInputs): TOutput;
}

/** Builds a loss from the trainer config that selected it. */
export type LossFactory<TConfig = unknown, TInputs = unknown, TOutput extends LossOutput = LossOutput> = (
  config: TConfig,
) => Loss<TInputs, TOutput>;

/** Options of {@link defineLoss}. */
export interface DefineLossOptions {
  /** False for a reference-free loss (no reference pass is run). Default true. */
  needsReference?: boolean;
}

/**
 * A typed loss factory for a batch kind: `compute` receives exactly that kind's inputs (no casts) and the
 * run's config. Register it once by name (`lossPlugin(factory)`, `registerLoss`) and select it with
 * `lossType`.
 *
 * ```ts
 * const marginDpo = defineLoss("margin_dpo", "preference", (x, config: { beta: number }) => {
 *   const chosen = tf.mul(tf.sub(x.chosenLogps, x.refChosenLogps), config.beta) as tf.Tensor1D;
 *   const rejected = tf.mul(tf.sub(x.rejectedLogps, x.refRejectedLogps), config.beta) as tf.Tensor1D;
 *   const loss = tf.mean(tf.softplus(tf.sub(0.5, tf.sub(chosen, rejected)))) as tf.Scalar;
 *   return { loss, rewards: { chosen, rejected } };
 * });
 * ```
 */
export function defineLoss<K extends BatchKind, TConfig = any>(
  name: string,
  batchKind: K,
  compute: (inputs: LossInputsByKind[K], config: TConfig) => LossOutput,
  options: DefineLossOptions = {},
): LossFactory<TConfig, LossInputsByKind[K]> & { readonly lossName: string; readonly batchKind: K } {
  const factory = (config: TConfig): Loss<LossInputsByKind[K]> => ({
    name,
    batchKind,
    needsReference: options.needsReference ?? true,
    compute: (inputs) => compute(inputs, config),
  });
  return Object.assign(factory, { lossName: name, batchKind });
}

/**
 * Throws a {@link ConfigError} (field `lossType`) when `loss` declares a batch kind other than `kind`: a
 * task checks the loss it was given trains on its batches. A loss that declares no kind passes.
 * @param what the batches in words, for the message (e.g. `"preference pairs"`).
 */
export function checkLossKind(loss: Loss<any, any>, kind: BatchKind | string, what: string, field = "lossType"): void {
  if (loss.batchKind !== undefined && loss.batchKind !== kind) {
    throw new ConfigError(`loss "${loss.name}" trains on "${loss.batchKind}" batches, not ${what}`, { field });
  }
}
