/**
 * `evaluatePreferences`: DPO's implicit-reward accuracy and margin of a policy against a reference.
 * @module
 */
import { type CausalLM, collateDpo, sequenceLogProbs, type TokenizerLike, tf } from "@prefkit/core";
import { type PreferenceDatasetInput, resolvePreferenceDataset } from "@prefkit/losses";

/** Options of {@link evaluatePreferences}. */
export interface EvaluatePreferencesOptions {
  /** Tokenizer for raw rows or a file (not needed for tokenised pairs). */
  tokenizer?: TokenizerLike;
  /** β of the implicit reward β·(log π − log πref). Default 0.1 (TRL's DPO default). */
  beta?: number;
  /** Pairs per forward pass. Default 8. */
  batchSize?: number;
  /** Truncation of prompt + completion, as `DPOConfig.maxLength`. Default 1024. */
  maxLength?: number | null;
}

/** What {@link evaluatePreferences} measures (TRL's metric names in `metrics`). */
export interface PreferenceEvaluation {
  /** Fraction of pairs whose chosen reward beats the rejected one (`rewards/accuracies`). */
  accuracy: number;
  /** Mean of r_c − r_r (`rewards/margins`). */
  meanMargin: number;
  /** Per-pair margins r_c − r_r, in dataset order. */
  margins: number[];
  /** Pairs evaluated. */
  numPairs: number;
  /**
   * `loss` (DPO's sigmoid loss −log σ(r_c − r_r), mean), `rewards/chosen`, `rewards/rejected`,
   * `rewards/accuracies`, `rewards/margins`, `logps/chosen`, `logps/rejected`.
   */
  metrics: Record<string, number>;
}

/**
 * Score preference pairs as the DPO model cards do: the implicit reward of each completion is
 * β·(log π(y|x) − log πref(y|x)) with summed completion log-probs (core's `sequenceLogProbs`, one
 * fused forward over chosen and rejected per batch, as the `DPOTrainer`); a pair counts as correct
 * when r_c > r_r. No gradients; every tensor is released.
 * @param model the policy.
 * @param ref the reference (e.g. the model before training).
 * @param rows tokenised pairs, raw TRL rows, or a JSON/JSONL file path.
 */
export async function evaluatePreferences(
  model: CausalLM,
  ref: CausalLM,
  rows: PreferenceDatasetInput,
  options: EvaluatePreferencesOptions = {},
): Promise<PreferenceEvaluation> {
  const beta = options.beta ?? 0.1;
  const bs = options.batchSize ?? 8;
  const pairs = (
    await resolvePreferenceDataset(rows, options.tokenizer, { maxLength: options.maxLength ?? 1024 }, "rows")
  ).examples;
  const pad = options.tokenizer?.padTokenId ?? options.tokenizer?.eosTokenId ?? 0;
  const margins: number[] = [];
  let chosenSum = 0;
  let rejectedSum = 0;
  let logpChosen = 0;
  let logpRejected = 0;
  for (let i = 0; i < pairs.length; i += bs) {
    const batch = collateDpo(pairs.slice(i, i + bs), { padTokenId: pad });
    const sums = (net: CausalLM) =>
      tf.tidy(() =>
        Array.from(
          sequenceLogProbs(net, batch.inputIds, batch.completionMask, {
            attentionMask: batch.attentionMask,
          }).sums.dataSync(),
        ),
      );
    const pol = sums(model);
    const rf = sums(ref);
    const b = batch.batchSize;
    for (let j = 0; j < b; j++) {
      const rc = beta * (pol[j]! - rf[j]!);
      const rr = beta * (pol[b + j]! - rf[b + j]!);
      margins.push(rc - rr);
      chosenSum += rc;
      rejectedSum += rr;
      logpChosen += pol[j]!;
      logpRejected += pol[b + j]!;
    }
  }
  const n = margins.length;
  const accuracy = n > 0 ? margins.filter((m) => m > 0).length / n : Number.NaN;
  const meanMargin = n > 0 ? margins.reduce((a, m) => a + m, 0) / n : Number.NaN;
  return {
    accuracy,
    meanMargin,
    margins,
    numPairs: n,
    metrics: {
      loss: n > 0 ? margins.reduce((a, m) => a + softplus(-m), 0) / n : Number.NaN,
      "rewards/chosen": chosenSum / n,
      "rewards/rejected": rejectedSum / n,
      "rewards/accuracies": accuracy,
      "rewards/margins": meanMargin,
      "logps/chosen": logpChosen / n,
      "logps/rejected": logpRejected / n,
    },
  };
}

/** log(1 + eˣ) without overflow: −log σ(m) = softplus(−m). */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}
