/**
 * The PPO reward (step 4 of trl-parity.md), and each of GRPO's and RLOO's reward functions: a reward model read
 * at the last real token of the truncated sequence (re-tokenising the text when it has its own tokenizer), or a
 * reward function of the decoded text.
 * @module
 */
import { ConfigError, isSequenceClassifier, type TokenizerLike, tf } from "@prefkit/core";
import type { PPORewardSource, RewardFunctionRegistry } from "./reward-function.js";
import type { ScoreRows } from "./rollout.js";

/** Scores of the truncated sequences of a rollout, one per row (`null` where a reward function does not apply). */
export type Scorer = (rows: ScoreRows) => Promise<ReadonlyArray<number | null>>;

/**
 * Checks that a reward model has one label (reward functions and names pass).
 * @throws ConfigError (field `rewardModel`).
 */
export function checkRewardSource(reward: PPORewardSource): void {
  if (isSequenceClassifier(reward) && reward.numLabels !== 1) {
    throw new ConfigError(`a reward model needs numLabels = 1, got ${reward.numLabels}`, { field: "rewardModel" });
  }
}

/** What {@link createScorer} needs. */
export interface ScorerOptions {
  /** The reward; a name is looked up in `registry`. */
  reward: PPORewardSource;
  /** The run's reward-function registry. */
  registry: RewardFunctionRegistry;
  /** The policy's tokenizer: decodes texts for reward functions and for re-tokenising. */
  tokenizer: TokenizerLike | undefined;
  /** The reward model's own tokenizer, when it differs from the policy's. */
  rewardTokenizer: TokenizerLike | undefined;
  /** Rows per reward-model forward. */
  forwardBatchSize: number;
  /** Where the re-tokenising notice goes (once per scorer). */
  warn: (message: string) => void;
  /** The config field errors name (default `rewardModel`; GRPO's is `rewardFuncs`). */
  field?: string;
}

/**
 * The scorer of a run: a reward function gets the decoded completions and prompts (special tokens skipped)
 * plus the ids; a reward model scores the sequences in chunks of `forwardBatchSize`, on the policy's ids or,
 * with a different `rewardTokenizer`, on the decoded prompt+response re-tokenised with it.
 * @throws ConfigError for an unknown name, or a missing tokenizer.
 */
export function createScorer(options: ScorerOptions): Scorer {
  const { tokenizer: tok, rewardTokenizer: rmTok } = options;
  const reward =
    typeof options.reward === "string"
      ? options.registry.get(options.reward, options.field ?? "rewardModel")
      : options.reward;
  if (typeof reward === "function") {
    if (tok === undefined) {
      throw new ConfigError("a reward function gets decoded text: pass processingClass", { field: "processingClass" });
    }
    return async (rows) => {
      const completions = rows.responseIds.map((r) => tok.decode(r, { skipSpecialTokens: true }));
      const prompts = rows.promptIds.map((r) => tok.decode(r, { skipSpecialTokens: true }));
      return reward(completions, prompts, {
        promptIds: rows.promptIds,
        completionIds: rows.responseIds,
        columns: rows.columns ?? {},
      });
    };
  }
  const retokenize = rmTok !== undefined && rmTok !== tok;
  if (retokenize && tok === undefined) {
    throw new ConfigError("re-tokenising for the reward model needs the policy's processingClass", {
      field: "processingClass",
    });
  }
  let noted = false;
  const encodeForReward = (rows: ScoreRows) => {
    if (!noted) {
      noted = true;
      options.warn(
        "PPOTrainer: the reward model's tokenizer differs from the policy's; decoding prompt+response and " +
          "re-tokenising the text for the reward model",
      );
    }
    const seqs = rows.promptIds.map((p, i) =>
      rmTok!.encode(tok!.decode([...p, ...rows.responseIds[i]!], { skipSpecialTokens: true })),
    );
    const len = Math.max(...seqs.map((s) => s.length));
    const pad = rmTok!.padTokenId ?? rmTok!.eosTokenId ?? 0;
    return {
      ids: seqs.map((s) => [...s, ...new Array<number>(len - s.length).fill(pad)]),
      mask: seqs.map((s) => Array.from({ length: len }, (_, t) => (t < s.length ? 1 : 0))),
    };
  };
  const chunk = options.forwardBatchSize;
  return async (rows) => {
    const { ids, mask } = retokenize ? encodeForReward(rows) : { ids: rows.inputIds, mask: rows.attentionMask };
    const out: number[] = [];
    for (let a = 0; a < ids.length; a += chunk) {
      const scores = tf.tidy(() =>
        reward
          .forward({ inputIds: ids.slice(a, a + chunk), attentionMask: mask.slice(a, a + chunk) })
          .logits.reshape([-1]),
      );
      out.push(...((await scores.data()) as Float32Array));
      scores.dispose();
    }
    return out;
  };
}
