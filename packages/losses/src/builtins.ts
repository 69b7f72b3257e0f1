import { type LossRegistryLike, registerDPOLosses } from "./dpo/objective.js";
import { cpoLossPlugin } from "./cpo/objective.js";
import { grpoObjective } from "./grpo/objective.js";
import { createKTOLoss } from "./kto/objective.js";
import { orpoLoss } from "./orpo/objective.js";
import { ppoLoss } from "./ppo/losses.js";
import { createRewardLoss } from "./reward/loss.js";
import { rlooObjective } from "./rloo/objective.js";
import { nllLoss } from "./sft/loss.js";

/**
 * Registers every built-in loss of `@prefkit/losses`: each DPO loss type under its TRL name and `"dpo"` (any
 * mix of types with weights) for preference pairs, `"reward"` for scored pairs, `"nll"` for single sequences,
 * `"kto"` and `"apo_zero_unpaired"` for unpaired feedback, the reference-free `"orpo"` and `"cpo"` (CPO's
 * loss type is a field of its config), `"ppo"` for on-policy rollouts, and `"grpo"` (TRL's four aggregations,
 * a field of its config) and `"rloo"` for group rollouts.
 */
export function registerBuiltinLosses(registry: LossRegistryLike): void {
  registerDPOLosses(registry);
  registry.register("reward", createRewardLoss);
  registry.register("nll", nllLoss);
  registry.register("kto", createKTOLoss("kto"));
  registry.register("apo_zero_unpaired", createKTOLoss("apo_zero_unpaired"));
  registry.register("orpo", orpoLoss);
  registry.register("cpo", cpoLossPlugin);
  registry.register("ppo", ppoLoss);
  registry.register("grpo", grpoObjective);
  registry.register("rloo", rlooObjective);
}
