import { tf } from "@prefkit/core";
import { asFloatTensor, type TensorInput } from "../dpo/tensor-input.js";

/** Per-token KL estimators of TRL's PPO (`kl_estimator`): k1 is unbiased, k3 is unbiased and ≥ 0. */
export type KLEstimator = "k1" | "k3";

/**
 * Per-token KL estimate between the policy and the reference on sampled tokens, with
 * logr = refLogprobs − logprobs: k1 = −logr, k3 = (e^logr − 1) − logr (Schulman's estimators).
 * Returns a new tensor of the inputs' shape; inputs are not disposed.
 */
export function klPenalty(logprobs: TensorInput, refLogprobs: TensorInput, estimator: KLEstimator = "k1"): tf.Tensor {
  return tf.tidy(() => {
    const logr = tf.sub(asFloatTensor(refLogprobs), asFloatTensor(logprobs));
    if (estimator === "k1") return tf.neg(logr);
    return tf.sub(tf.sub(tf.exp(logr), 1), logr);
  });
}

/** Serialisable state of a KL controller (what a checkpoint stores). */
export type KLControllerState =
  | { kind: "fixed"; value: number }
  | { kind: "adaptive"; value: number; target: number; horizon: number };

/** A controller of the KL coefficient β of the per-token reward −β·KL. */
export interface KLController {
  /** The current coefficient. */
  readonly value: number;
  /** Updates the coefficient after a batch with mean KL `currentKl` covering `nSteps` samples. */
  update(currentKl: number, nSteps: number): void;
  /** The state to checkpoint; {@link klControllerFromState} restores it. */
  state(): KLControllerState;
}

/** A constant KL coefficient (TRL PPOv2's `kl_coef`). */
export class FixedKLController implements KLController {
  /** The coefficient. */
  value: number;
  /** @param klCoef the constant coefficient */
  constructor(klCoef: number) {
    this.value = klCoef;
  }
  /** No-op: the coefficient is fixed. */
  update(_currentKl: number, _nSteps: number): void {}
  /** `{ kind: "fixed", value }`. */
  state(): KLControllerState {
    return { kind: "fixed", value: this.value };
  }
}

/**
 * The adaptive KL controller of Ziegler et al. (2019), as in TRL's `AdaptiveKLController`:
 * e = clip(KL / target − 1, −0.2, 0.2); β ← β · (1 + e · nSteps / horizon).
 */
export class AdaptiveKLController implements KLController {
  /** The current coefficient. */
  value: number;
  /** Target KL (nats). */
  readonly target: number;
  /** Horizon in samples over which the error is corrected. */
  readonly horizon: number;
  /**
   * @param initKlCoef initial coefficient (TRL 0.2)
   * @param target target KL (TRL 6)
   * @param horizon horizon in samples (TRL 10000)
   */
  constructor(initKlCoef = 0.2, target = 6, horizon = 10000) {
    this.value = initKlCoef;
    this.target = target;
    this.horizon = horizon;
  }
  /** Moves the coefficient towards keeping the KL at `target`. */
  update(currentKl: number, nSteps: number): void {
    const proportionalError = Math.min(Math.max(currentKl / this.target - 1, -0.2), 0.2);
    this.value *= 1 + (proportionalError * nSteps) / this.horizon;
  }
  /** `{ kind: "adaptive", value, target, horizon }`. */
  state(): KLControllerState {
    return { kind: "adaptive", value: this.value, target: this.target, horizon: this.horizon };
  }
}

/** Rebuilds a controller from {@link KLController.state}'s output (e.g. on resume). */
export function klControllerFromState(state: KLControllerState): KLController {
  return state.kind === "fixed"
    ? new FixedKLController(state.value)
    : new AdaptiveKLController(state.value, state.target, state.horizon);
}
