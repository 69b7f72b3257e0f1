import {
  checkLossKind,
  ConfigError,
  type Loss,
  type LossFactory,
  type LossOutput,
  type LossRegistry,
  type LossRewards,
  type PreferenceInputs,
  tf,
} from "@prefkit/core";
import { DPO_LOSS_TYPES, type DPOLossType, lossTypeList } from "./config.js";
import type { DPOLossOptions } from "./config.js";
import { dpoLoss } from "./loss.js";
import type { TensorInput } from "./tensor-input.js";

/**
 * Inputs of a DPO {@link Loss}: core's {@link PreferenceInputs} (tensors, as the preference task passes
 * them), or the same fields as plain arrays for direct calls.
 */
export type DPOLossInputs = { [K in keyof PreferenceInputs]: PreferenceInputs[K] | TensorInput };

/** Output of a DPO {@link Loss}: the mean loss and the implicit rewards β·(log πθ − log πref) per pair. */
export interface DPOLossOutput extends LossOutput {
  /** Per-pair rewards; the trainer logs TRL's `rewards/*` metrics from them. */
  rewards: LossRewards;
}

/**
 * A DPO {@link Loss} for the given options: `compute` returns the batch-mean loss (the weighted sum of
 * the per-type means, as TRL) and the per-pair rewards (always computed with the reference, as TRL), from
 * which the trainer logs `rewards/chosen`, `rewards/rejected`, `rewards/margins` and `rewards/accuracies`.
 * All returned tensors are new and owned by the caller.
 */
export function createDPOLoss(options: DPOLossOptions = {}): Loss<DPOLossInputs, DPOLossOutput> {
  const name = lossTypeList(options.lossType).join("+");
  return {
    name,
    batchKind: "preference",
    compute(inputs: DPOLossInputs): DPOLossOutput {
      return tf.tidy(() => {
        const { losses, chosenRewards, rejectedRewards } = dpoLoss(
          inputs.chosenLogps,
          inputs.rejectedLogps,
          inputs.refChosenLogps,
          inputs.refRejectedLogps,
          options,
          inputs,
        );
        return { loss: tf.mean(losses) as tf.Scalar, rewards: { chosen: chosenRewards, rejected: rejectedRewards } };
      });
    },
  };
}

/** A factory for each DPO loss type: it builds the loss from a DPO config, forcing that one type. */
export const DPO_LOSSES: Record<
  DPOLossType,
  LossFactory<DPOLossOptions, DPOLossInputs, DPOLossOutput>
> = Object.fromEntries(
  DPO_LOSS_TYPES.map((lossType) => [
    lossType,
    (config: DPOLossOptions = {}) => createDPOLoss({ ...config, lossType, lossWeights: null }),
  ]),
) as Record<DPOLossType, LossFactory<DPOLossOptions, DPOLossInputs, DPOLossOutput>>;

/**
 * The part of a loss registry that registration needs, so any registry (core's `LossRegistry`, a
 * `Map` wrapper in a test) can receive the built-in losses.
 */
export interface LossRegistryLike {
  /** Registers `factory` under `name`. */
  register(name: string, factory: LossFactory<any, any, any>): void;
}

/** Registers every DPO loss type under its TRL name (`"sigmoid"`, `"ipo"`, …) plus `"dpo"` (any mix). */
export function registerDPOLosses(registry: LossRegistryLike): void {
  for (const [name, factory] of Object.entries(DPO_LOSSES)) registry.register(name, factory);
  registry.register("dpo", (config: DPOLossOptions = {}) => createDPOLoss(config));
}

/**
 * Look a loss factory up by name: the registry first, then the built-in DPO losses (so a user registry that
 * lacks them still knows `"sigmoid"`). Throws the registry's {@link ConfigError} (listing the known names)
 * when neither has it.
 */
export function lossFactory(registry: LossRegistry, name: string, field: string): LossFactory<any, any, any> {
  if (registry.has(name)) return registry.get(name, field);
  const builtin = (DPO_LOSSES as Record<string, LossFactory<any, any, any>>)[name];
  return builtin ?? registry.get(name, field);
}

/** The fields of a DPO config that shape its combined loss. */
export interface DPOObjectiveConfig extends Omit<DPOLossOptions, "lossType"> {
  /** Loss names: built-in types or registered user losses. */
  lossType: readonly string[];
  /** One weight per name; null weights every loss 1. */
  lossWeights: readonly number[] | null;
  /** RPO's α·NLL(chosen) term; null: off. */
  rpoAlpha: number | null;
}

/**
 * The loss a DPO run minimises: every `lossType` built from the registry (user losses by name, exactly like
 * `"sigmoid"`), summed with `lossWeights`, plus `rpoAlpha`·NLL(chosen) when set. Rewards are the first
 * loss's that returns some (the preference task logs β·(log πθ − log πref) otherwise); metrics are merged.
 * With WPO (`PreferenceInputs.policyWeights`), the built-in losses weigh their per-pair losses and the RPO
 * term is weighted likewise; a user loss reads `policyWeights` itself.
 * @throws ConfigError for an unknown name or a `lossWeights` of the wrong length.
 */
export function dpoObjective(registry: LossRegistry, config: DPOObjectiveConfig): Loss<PreferenceInputs> {
  const names = config.lossType;
  const losses = names.map(
    (name, i) =>
      lossFactory(registry, name, names.length === 1 ? "lossType" : `lossType[${i}]`)(config) as Loss<PreferenceInputs>,
  );
  const weights = config.lossWeights ?? names.map(() => 1);
  if (weights.length !== names.length) {
    throw new ConfigError(`must be null or a list of ${names.length} numbers, one per loss type`, {
      field: "lossWeights",
    });
  }
  losses.forEach((l, i) => {
    checkLossKind(l, "preference", "preference pairs", names.length === 1 ? "lossType" : `lossType[${i}]`);
  });
  const rpoAlpha = config.rpoAlpha;
  return {
    name: names.join("+"),
    batchKind: "preference",
    needsReference: losses.some((l) => l.needsReference !== false),
    compute(inputs: PreferenceInputs): LossOutput {
      let loss: tf.Scalar | undefined;
      let rewards: LossRewards | undefined;
      const metrics: Record<string, tf.Scalar | number> = {};
      losses.forEach((l, i) => {
        const out = l.compute(inputs);
        const term = tf.mul(out.loss, weights[i]!) as tf.Scalar;
        loss = loss === undefined ? term : (tf.add(loss, term) as tf.Scalar);
        rewards ??= out.rewards;
        Object.assign(metrics, out.metrics ?? {});
      });
      if (rpoAlpha !== null && rpoAlpha !== undefined) {
        // Older TRL weighted (loss + α·NLL) per pair with WPO's weights: the NLL term's mean weight is mean(w).
        const nll =
          inputs.policyWeights === undefined
            ? inputs.chosenNll
            : tf.mul(inputs.chosenNll, tf.mean(inputs.policyWeights));
        loss = tf.add(loss!, tf.mul(nll, rpoAlpha)) as tf.Scalar;
      }
      return { loss: loss!, metrics, ...(rewards !== undefined ? { rewards } : {}) };
    },
  };
}
