/**
 * `@prefkit/losses`: the loss plugins (the DPO loss family, the reward-model loss, SFT's NLL, PPO with a KL
 * penalty), the tasks that feed them on core's generic `Trainer`, the TRL-compatible trainer façades
 * (`DPOTrainer`, `SFTTrainer`, `RewardTrainer`, `PPOTrainer`) and `createTrainer`, and the KTO, ORPO,
 * CPO/SimPO, GRPO and RLOO loss and advantage functions.
 * @packageDocumentation
 */
export { registerBuiltinLosses } from "./builtins.js";
export { createTrainer, type TrainingMethods } from "./create-trainer.js";
export * from "./common/index.js";
export * from "./preference/index.js";
export * from "./dpo/index.js";
export * from "./sft/index.js";
export * from "./reward/index.js";
export * from "./ppo/index.js";
export * from "./kto/index.js";
export * from "./orpo/index.js";
export * from "./cpo/index.js";
export * from "./grpo/index.js";
export * from "./rloo/index.js";
