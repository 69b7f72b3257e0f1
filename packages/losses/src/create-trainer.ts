/**
 * `createTrainer`: the composition root by method name. It composes the run exactly as the façades do and
 * resolves core's generic `Trainer` from the run container.
 * @module
 */
import { ConfigError, type RunDefinition, resolveTrainer, type Trainer, type TrainingArgs } from "@prefkit/core";
import { type DPOTrainerOptions, dpoRun } from "./dpo/method.js";
import { type CPOTrainerOptions, cpoRun } from "./cpo/trainer.js";
import { type GRPOTrainerOptions, grpoRun } from "./grpo/method.js";
import { type KTOTrainerOptions, ktoRun } from "./kto/method.js";
import { type ORPOTrainerOptions, orpoRun } from "./orpo/trainer.js";
import { type PPOTrainerOptions, ppoRun } from "./ppo/method.js";
import { type RewardTrainerOptions, rewardRun } from "./reward/method.js";
import { type RLOOTrainerOptions, rlooRun } from "./rloo/method.js";
import { type SFTTrainerOptions, sftRun } from "./sft/method.js";

/** The options of each method `createTrainer` knows, by name. */
export interface TrainingMethods {
  /** Direct Preference Optimization (and every DPO loss type, and user preference losses). */
  dpo: DPOTrainerOptions;
  /** Supervised fine-tuning. */
  sft: SFTTrainerOptions;
  /** Reward modelling. */
  reward: RewardTrainerOptions;
  /** KTO on unpaired feedback. */
  kto: KTOTrainerOptions;
  /** ORPO (reference-free). */
  orpo: ORPOTrainerOptions;
  /** CPO, SimPO, AlphaPO (reference-free). */
  cpo: CPOTrainerOptions;
  /** PPO with a KL penalty (on-policy rollouts, the `"ppo"` loss). */
  ppo: PPOTrainerOptions;
  /** GRPO: group-relative advantages from reward functions, no value model (the `"grpo"` loss). */
  grpo: GRPOTrainerOptions;
  /** RLOO: leave-one-out baseline from reward functions (the `"rloo"` loss). */
  rloo: RLOOTrainerOptions;
}

const DEFINITIONS: { [M in keyof TrainingMethods]: (o: TrainingMethods[M]) => RunDefinition<any, any, any> } = {
  dpo: (o) => dpoRun(o).definition,
  sft: (o) => sftRun(o).definition,
  reward: (o) => rewardRun(o).definition,
  kto: (o) => ktoRun(o).definition,
  orpo: (o) => orpoRun(o).definition,
  cpo: (o) => cpoRun(o).definition,
  ppo: (o) => ppoRun(o).definition,
  grpo: (o) => grpoRun(o).definition,
  rloo: (o) => rlooRun(o).definition,
};

/**
 * Compose a run of `method` and resolve its trainer from the run container (see core's `composeRun`):
 * the config's defaults, the plugins (a user's loss, LoRA, AMP), the loss from the registry by `lossType`,
 * the task and the data are registered there, and any part the parent container (`options.container`)
 * provides — an `OPTIMIZER`, a `REFERENCE_MODEL`, `CALLBACKS` — is used instead of the default.
 *
 * ```ts
 * const trainer = createTrainer("dpo", { model, args: { lossType: "margin_dpo" }, trainDataset, plugins: [lossPlugin(marginDpo)] });
 * await trainer.train();
 * ```
 */
export function createTrainer<M extends keyof TrainingMethods>(
  method: M,
  options: TrainingMethods[M],
): Trainer<unknown, TrainingArgs> {
  const define = DEFINITIONS[method] as ((o: TrainingMethods[M]) => RunDefinition<any, any, any>) | undefined;
  if (define === undefined) {
    throw new ConfigError(`unknown method "${String(method)}"; known: ${Object.keys(DEFINITIONS).join(", ")}`, {
      field: "method",
    });
  }
  return resolveTrainer(define(options), options);
}
