import { type LossRegistryLike, registerDPOLosses } from "./dpo/objective.js";
import { cpoLossPlugin } from "./cpo/objective.js";
import { createKTOLoss } from "./kto/objective.js";
import { orpoLoss } from "./orpo/objective.js";
import { ppoLoss } from "./ppo/losses.js";
import { createRewardLoss } from "./reward/loss.js";
import { nllLoss } from "./sft/loss.js";

/**
 * Registers every built-in loss of `@prefkit/losses`: each DPO loss type under its TRL name and `"dpo"` (any
 * mix of types with weights) for preference pairs, `"reward"` for scored pairs, `"nll"` for single sequences,
 * `"kto"` and `"apo_zero_unpaired"` for unpaired feedback, the reference-free `"orpo"` and `"cpo"` (CPO's
 * loss type is a field of its config), and `"ppo"` for on-policy rollouts.
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
}
