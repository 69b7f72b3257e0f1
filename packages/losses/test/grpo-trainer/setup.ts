/** The tiny GRPO/RLOO setup: PPO's random Llama, one-character tokenizer and "count the f" rule reward. */
import { join } from "node:path";
import {
  type GroupRolloutConfig,
  GRPOTrainer,
  type GRPOTrainerOptions,
  RLOOTrainer,
  type RLOOTrainerOptions,
} from "@prefkit/losses";
import { countF, policy, prompts, tokenizer } from "../ppo-trainer/setup.js";

export { countF, EOS, PAD, policy, prompts, tokenizer } from "../ppo-trainer/setup.js";

/** 2 prompts × 4 completions per update, 2 micro-batches of 4. */
export const BASE = {
  perDeviceTrainBatchSize: 4,
  gradientAccumulationSteps: 2,
  numGenerations: 4,
  maxCompletionLength: 6,
  learningRate: 3e-3,
  loggingSteps: 1,
  saveStrategy: "no" as const,
  seed: 5,
} satisfies Partial<GroupRolloutConfig>;

/** Either façade, by method name. */
export type Method = "grpo" | "rloo";

/** The options both façades take, with the tiny setup's defaults. */
export type TrainerOptions = Partial<GRPOTrainerOptions & RLOOTrainerOptions>;

/** A GRPO or RLOO trainer on 16 prompts with the {@link countF} reward and {@link BASE} args, writing under `dir`. */
export function makeTrainer(
  method: Method,
  dir: string,
  extra: TrainerOptions = {},
  args: Record<string, unknown> = {},
) {
  const options = {
    model: extra.model ?? policy(),
    rewardFuncs: countF,
    trainDataset: prompts(16),
    processingClass: tokenizer,
    ...extra,
    args: { ...BASE, outputDir: join(dir, "run"), ...args },
  };
  return method === "grpo"
    ? new GRPOTrainer(options as GRPOTrainerOptions)
    : new RLOOTrainer(options as RLOOTrainerOptions);
}

/** The training log entries (one per update). */
export function updateLogs(history: ReadonlyArray<Record<string, number>>): Array<Record<string, number>> {
  return history.filter((e) => "reward" in e && !("eval_reward" in e));
}
