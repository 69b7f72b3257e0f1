/**
 * Sampling of rollout responses: the policy's KV-cache `generate()` (temperature, top-k, top-p), or for a policy
 * without one, multinomial sampling (or greedy decoding) with full forwards; both keep the temperature-scaled
 * log-prob of every sampled token.
 * @module
 */
import { type CausalLM, canGenerate, ConfigError, type Rng, tf } from "@prefkit/core";

/** Settings of {@link collectRollout}. */
export interface RolloutSettings {
  /** Maximum new tokens. */
  responseLength: number;
  /** Sampling temperature; log-probs use logits / (temperature + 1e-7), as TRL. */
  temperature: number;
  /** Keep the k most likely tokens when sampling (0 = off, the default). Needs a policy with `generate()`. */
  topK?: number;
  /** Nucleus sampling mass (1 = off, the default). Needs a policy with `generate()`. */
  topP?: number;
  /** Rows per forward pass. */
  localRolloutForwardBatchSize: number;
  /** Subtracted from the score of rows without eos (`null`: off). */
  missingEosPenalty: number | null;
  /** Truncate after the first occurrence of this id (`null`: no truncation). */
  stopTokenId: number | null;
  /** The eos id (ends generation; counted for the eos penalty and `val/num_eos_tokens`). */
  eosTokenId: number | undefined;
  /** Id written into padding. */
  padTokenId: number;
  /** Sample (rollouts) or decode greedily (evaluation); log-probs are temperature-scaled either way. Default true. */
  doSample?: boolean;
}

/** `cumsum(mask) − mask` per row (TRL's position ids). */
export function positionsFromMask(mask: readonly (readonly number[])[]): number[][] {
  return mask.map((row) => {
    let seen = 0;
    return row.map((m) => {
      seen += m;
      return seen - m;
    });
  });
}

/** Sampled response tokens and their temperature-scaled log-probs, per row. */
export interface Sampled {
  newTokens: number[][];
  logprobs: number[][];
}

/** Multinomial sampling (or greedy decoding) with full forwards (no KV cache): for a policy that does not implement `Generator`. */
async function sampleWithForward(
  policy: CausalLM,
  ids: number[][],
  mask: number[][],
  s: RolloutSettings,
  rng: Rng,
): Promise<Sampled> {
  const t = s.temperature + 1e-7;
  const seqs = ids.map((r) => r.slice());
  const masks = mask.map((r) => r.slice());
  const newTokens: number[][] = ids.map(() => []);
  const logprobs: number[][] = ids.map(() => []);
  const done = ids.map(() => false);
  for (let step = 0; step < s.responseLength && !done.every(Boolean); step++) {
    const last = tf.tidy(() => {
      const logits = policy.forward({
        inputIds: seqs,
        attentionMask: masks,
        positionIds: positionsFromMask(masks),
      }).logits;
      const [b, len, v] = logits.shape;
      return tf.reshape(tf.slice(logits, [0, len - 1, 0], [b, 1, v]), [b, v]);
    });
    const rows = (await last.array()) as number[][];
    last.dispose();
    for (let r = 0; r < rows.length; r++) {
      if (done[r]) {
        seqs[r]!.push(s.padTokenId);
        masks[r]!.push(0);
        continue;
      }
      const z = rows[r]!.map((x) => x / t);
      const max = Math.max(...z);
      const p = z.map((x) => Math.exp(x - max));
      const sum = p.reduce((a, b) => a + b, 0);
      let tok = p.length - 1;
      if (s.doSample === false) tok = z.indexOf(max);
      else {
        let u = rng.next() * sum;
        for (let i = 0; i < p.length; i++) {
          u -= p[i]!;
          if (u < 0) {
            tok = i;
            break;
          }
        }
      }
      newTokens[r]!.push(tok);
      logprobs[r]!.push(z[tok]! - max - Math.log(sum));
      seqs[r]!.push(tok);
      masks[r]!.push(1);
      if (tok === s.eosTokenId) done[r] = true;
    }
  }
  return { newTokens, logprobs };
}

/** Sample responses to left-padded prompts `ids` (mask `mask`) with the settings of `s`, drawing from `rng`. */
export async function samplePolicy(
  policy: CausalLM,
  ids: number[][],
  mask: number[][],
  s: RolloutSettings,
  rng: Rng,
): Promise<Sampled> {
  const topK = s.topK ?? 0;
  const topP = s.topP ?? 1;
  if (!canGenerate(policy)) {
    if (topK !== 0 || topP !== 1) {
      throw new ConfigError("topK/topP sampling needs a policy with generate()", {
        field: topK !== 0 ? "topK" : "topP",
      });
    }
    return sampleWithForward(policy, ids, mask, s, rng);
  }
  const out = await policy.generate(ids, {
    maxNewTokens: s.responseLength,
    doSample: s.doSample ?? true,
    temperature: s.temperature + 1e-7,
    topK,
    topP,
    eosTokenId: s.eosTokenId === undefined ? [] : s.eosTokenId,
    padTokenId: s.padTokenId,
    attentionMask: mask,
    rng,
    returnLogprobs: true,
  });
  if (out.logprobs === undefined)
    throw new ConfigError("the policy's generate() returned no logprobs", { field: "model" });
  return { newTokens: out.newTokens, logprobs: out.logprobs };
}
