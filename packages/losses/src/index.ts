/**
 * `@prefkit/losses`: the DPO loss family, the reward-model loss, PPO with a KL penalty, the KTO, ORPO, CPO/SimPO,
 * GRPO and RLOO loss and advantage functions, and the DPO and SFT trainers.
 * @packageDocumentation
 */
export * from "./dpo/index.js";
export * from "./reward/index.js";
export * from "./ppo/index.js";
export * from "./trainers/index.js";
export * from "./kto/index.js";
export * from "./orpo/index.js";
export * from "./cpo/index.js";
export * from "./grpo/index.js";
export * from "./rloo/index.js";
