/**
 * `@prefkit/losses`: the DPO loss family, the reward-model loss, PPO with a KL penalty, and the DPO and SFT trainers.
 * @packageDocumentation
 */
export * from "./dpo/index.js";
export * from "./reward/index.js";
export * from "./ppo/index.js";
export * from "./trainers/index.js";
