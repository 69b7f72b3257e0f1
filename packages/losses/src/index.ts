/**
 * `@prefkit/losses`: the DPO loss family, the reward-model loss and PPO with a KL penalty.
 * @packageDocumentation
 */
export * from "./dpo/index.js";
export * from "./reward/index.js";
export * from "./ppo/index.js";
