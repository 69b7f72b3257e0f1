/** The tiny PPO setup the PPO trainer tests share: a random Llama, a one-character tokenizer and a rule reward. */
import { join } from "node:path";
import { type ChatMessage, Rng, type TokenizerLike } from "@prefkit/core";
import { PPOTrainer, type PPOTrainerOptions, type RewardFunction } from "@prefkit/losses";
import { AutoModelForCausalLM } from "@prefkit/models";
import { TINY_LLAMA_WITH_SPECIAL_TOKENS } from "../../../../test/helpers/tiny-llama.js";

export const VOCAB = 16;
export const TINY = TINY_LLAMA_WITH_SPECIAL_TOKENS;
export const EOS = 2;
export const PAD = 0;
export const policy = (seed = 1) =>
  AutoModelForCausalLM.fromConfig(TINY, { seed, generationConfig: { bos_token_id: 1, eos_token_id: EOS } });

/** One character per id: enough for reward functions that read text. */
export const tokenizer: TokenizerLike = {
  encode: (text) => [...text].map((ch) => ch.charCodeAt(0) - 97),
  decode: (ids, o) =>
    ids
      .filter((id) => !(o?.skipSpecialTokens && id <= 2))
      .map((id) => String.fromCharCode(97 + id))
      .join(""),
  applyChatTemplate: (messages: ChatMessage[]) => messages.map((m) => m.content).join(""),
  hasChatTemplate: false,
  bosTokenId: 1,
  eosTokenId: EOS,
  padTokenId: PAD,
};

/** +1 for every "f" (id 5) in the completion: a transparent rule. */
export const countF: RewardFunction = (completions) => completions.map((c) => [...c].filter((ch) => ch === "f").length);

export function prompts(n: number, seed = 3) {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => ({
    inputIds: [1, ...Array.from({ length: 1 + r.int(3) }, () => 3 + r.int(VOCAB - 3))],
  }));
}

export const BASE = {
  perDeviceTrainBatchSize: 4,
  numMiniBatches: 2,
  gradientAccumulationSteps: 1,
  numPpoEpochs: 2,
  responseLength: 6,
  learningRate: 3e-3,
  loggingSteps: 1,
  saveStrategy: "no" as const,
  valueHead: "policy" as const,
  seed: 5,
};

/** A PPOTrainer on 16 prompts with the {@link countF} reward and {@link BASE} args, writing under `dir`. */
export function makePPOTrainer(
  dir: string,
  extra: Partial<PPOTrainerOptions> = {},
  args: PPOTrainerOptions["args"] = {},
) {
  const model = extra.model ?? policy();
  return new PPOTrainer({
    model,
    rewardModel: countF,
    trainDataset: prompts(16),
    processingClass: tokenizer,
    ...extra,
    args: { ...BASE, outputDir: join(dir, "run"), ...args },
  });
}
