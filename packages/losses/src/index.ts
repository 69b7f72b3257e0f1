/**
 * `@prefkit/losses`: the loss plugins (the DPO loss family, the reward-model loss, SFT's NLL, PPO with a KL
 * penalty), the tasks that feed them on core's generic `Trainer`, and the TRL-compatible trainer façades
 * (`DPOTrainer`, `SFTTrainer`, `RewardTrainer`, `PPOTrainer`) and `createTrainer`.
 * @packageDocumentation
 */
export { registerBuiltinLosses } from "./builtins.js";
export * from "./common/index.js";
export * from "./preference/index.js";
export * from "./dpo/index.js";
export * from "./sft/index.js";
export * from "./reward/index.js";
export * from "./ppo/index.js";
