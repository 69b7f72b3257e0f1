import { createRewardLoss } from "../reward/loss.js";
import { type LossRegistryLike, registerDPOLosses } from "./objective.js";

/**
 * Registers every built-in loss of `@prefkit/losses`: each DPO loss type under its TRL name, `"dpo"`
 * (any mix of types with weights) and `"reward"` (the reward-model loss).
 */
export function registerBuiltinLosses(registry: LossRegistryLike): void {
  registerDPOLosses(registry);
  registry.register("reward", createRewardLoss);
}
