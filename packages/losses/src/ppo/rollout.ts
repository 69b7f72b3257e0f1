/**
 * One PPO rollout (TRL PPOv2, steps 1–5 of trl-parity.md): sample responses with the KV-cache generator
 * keeping the temperature-scaled log-probs, score them with the reference, truncate at the stop token,
 * read V per response token, and score the truncated sequences. Plain arrays out: the update turns
 * them into tensors per micro-batch. Evaluation runs the same steps with greedy decoding and no values.
 * @module
 */
import {
  type CausalLM,
  canGenerate,
  ConfigError,
  type ForwardInputs,
  type Rng,
  selectiveLogProbs,
  tf,
} from "@prefkit/core";
import type { ReferenceSource } from "../preference/reference.js";
import { leftPad } from "./prompts.js";

/** TRL's fill value for log-probs at padded response positions (their difference, and KL, is then 0). */
export const INVALID_LOGPROB = 1.0;

/** What a scorer gets: the truncated sequences, as ids and as a padded batch. */
export interface ScoreRows {
  /** Prompt ids per row, unpadded. */
  promptIds: number[][];
  /** Truncated response ids per row, unpadded (the stop token kept). */
  responseIds: number[][];
  /** `[B, C + W]`: left-padded prompt, truncated response, right padding. */
  inputIds: number[][];
  /** `[B, C + W]` mask built from lengths. */
  attentionMask: number[][];
}

/** Settings of {@link collectRollout}. */
export interface RolloutSettings {
  /** Maximum new tokens. */
  responseLength: number;
  /** Sampling temperature; log-probs use logits / (temperature + 1e-7), as TRL. */
  temperature: number;
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

/** Collaborators of {@link collectRollout}. */
export interface RolloutParts {
  /** The policy, and V per position `[B, T]` (a `PolicyAndValueModel`; without `values`, as in evaluation, they are 0). */
  model: { policy: CausalLM; values?(inputs: ForwardInputs): tf.Tensor2D };
  /** The frozen reference. */
  reference: ReferenceSource;
  /** Scores of the truncated sequences (reward model or reward function). */
  score: (rows: ScoreRows) => Promise<number[]>;
  /** Sampling stream (the trainer's, so a resumed run continues it). */
  rng: Rng;
}

/** A rollout batch of B rows with responses padded to width W. Row-major plain arrays. */
export interface Rollout {
  /** C: the left-padded prompt length. */
  contextLength: number;
  /** W: the longest generated response. */
  width: number;
  /** Prompt ids per row, unpadded. */
  promptIds: number[][];
  /** `[B, C + W]` prompt + generated response + padding (the sequence the policy is trained on). */
  queryResponses: number[][];
  /** `[B, C + W]` mask from lengths (prompt and generated tokens). */
  attentionMask: number[][];
  /** `[B, C + W]` positions `cumsum(mask) − mask`, as TRL's `forward`. */
  positionIds: number[][];
  /** `[B, W]` generated ids, padded. */
  responses: number[][];
  /** Generated tokens per row (the eos included). */
  generatedLengths: number[];
  /** Tokens per row after truncation at the stop token (kept). TRL's `sequence_lengths` is this − 1. */
  validLengths: number[];
  /** `[B, W]` log π_old (temperature-scaled), {@link INVALID_LOGPROB} past `validLengths`. */
  logprobs: number[][];
  /** `[B, W]` log π_ref, same scaling and fill. */
  refLogprobs: number[][];
  /** `[B, W]` V before each response token, 0 past `validLengths` + 1 (TRL's `padding_mask_p1`). */
  values: number[][];
  /** Score per row, the eos penalty applied. */
  scores: number[];
  /** Whether the truncated response contains eos. */
  containsEos: boolean[];
  /** eos tokens among the generated tokens (`val/num_eos_tokens`). */
  numEosTokens: number;
}

/** Truncate after the first `stopTokenId` (kept). Returns the kept prefix. */
export function truncateResponse(response: readonly number[], stopTokenId: number | null): number[] {
  if (stopTokenId === null) return response.slice();
  const at = response.indexOf(stopTokenId);
  return at < 0 ? response.slice() : response.slice(0, at + 1);
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

interface Sampled {
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

async function samplePolicy(
  policy: CausalLM,
  ids: number[][],
  mask: number[][],
  s: RolloutSettings,
  rng: Rng,
): Promise<Sampled> {
  if (!canGenerate(policy)) return sampleWithForward(policy, ids, mask, s, rng);
  const out = await policy.generate(ids, {
    maxNewTokens: s.responseLength,
    doSample: s.doSample ?? true,
    temperature: s.temperature + 1e-7,
    topK: 0,
    topP: 1,
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

function chunks(n: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i += size) out.push([i, Math.min(n, i + size)]);
  return out;
}

/** log softmax(logits / (T + 1e-7)) of the response tokens, `[b, W]`, from a full forward. */
export function responseLogprobs(
  net: CausalLM,
  inputs: ForwardInputs,
  responses: number[][],
  contextLength: number,
  temperature: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const logits = net.forward(inputs).logits;
    const [b, , v] = logits.shape;
    const w = responses[0]!.length;
    const scaled = tf.div(tf.slice(logits, [0, contextLength - 1, 0], [b, w, v]), temperature + 1e-7) as tf.Tensor3D;
    return selectiveLogProbs(scaled, responses);
  });
}

/**
 * Sample and score one rollout batch (no gradients anywhere). `promptIds` are unpadded; they are
 * left-padded once for the whole batch, then processed in chunks of `localRolloutForwardBatchSize`.
 */
export async function collectRollout(
  promptIds: readonly (readonly number[])[],
  parts: RolloutParts,
  s: RolloutSettings,
): Promise<Rollout> {
  const padded = leftPad(promptIds, s.padTokenId);
  const c = padded.length;
  const n = promptIds.length;
  const parts_ = chunks(n, s.localRolloutForwardBatchSize);

  // 1. sample, keeping temperature-scaled log π_old
  const newTokens: number[][] = [];
  const oldLogprobs: number[][] = [];
  for (const [a, b] of parts_) {
    const out = await samplePolicy(
      parts.model.policy,
      padded.inputIds.slice(a, b),
      padded.attentionMask.slice(a, b),
      s,
      parts.rng,
    );
    newTokens.push(...out.newTokens);
    oldLogprobs.push(...out.logprobs);
  }
  const generatedLengths = newTokens.map((t) => t.length);
  const width = Math.max(1, ...generatedLengths);
  const padTo = (row: number[], fill: number) => [...row, ...new Array<number>(width - row.length).fill(fill)];
  const responses = newTokens.map((r) => padTo(r, s.padTokenId));
  const queryResponses = padded.inputIds.map((p, i) => [...p, ...responses[i]!]);
  const attentionMask = padded.attentionMask.map((m, i) => [
    ...m,
    ...padTo(
      newTokens[i]!.map(() => 1),
      0,
    ),
  ]);
  const positionIds = positionsFromMask(attentionMask);

  // 3. truncate at the stop token (kept); lengths, not pad ids, decide what is valid
  const truncated = newTokens.map((r) => truncateResponse(r, s.stopTokenId));
  const validLengths = truncated.map((r) => r.length);

  // 2 + 5. reference log-probs and values over the generated sequences
  const refLogprobs: number[][] = [];
  const values: number[][] = [];
  for (const [a, b] of parts_) {
    const inputs: ForwardInputs = {
      inputIds: queryResponses.slice(a, b),
      attentionMask: attentionMask.slice(a, b),
      positionIds: positionIds.slice(a, b),
    };
    const ref = parts.reference.run((net) => responseLogprobs(net, inputs, responses.slice(a, b), c, s.temperature));
    refLogprobs.push(...((await ref.array()) as number[][]));
    ref.dispose();
    const valueFn = parts.model.values?.bind(parts.model);
    if (valueFn === undefined) {
      for (let i = a; i < b; i++) values.push(new Array<number>(width).fill(0));
      continue;
    }
    const v = tf.tidy(() => tf.slice(valueFn(inputs), [0, c - 1], [b - a, width]));
    values.push(...((await v.array()) as number[][]));
    v.dispose();
  }
  const fill = (rows: number[][], keep: (t: number, i: number) => boolean, value: number) =>
    rows.map((row, i) => row.map((x, t) => (keep(t, i) ? x : value)));
  const logprobs = fill(
    oldLogprobs.map((r) => padTo(r, INVALID_LOGPROB)),
    (t, i) => t < validLengths[i]!,
    INVALID_LOGPROB,
  );
  const refFilled = fill(refLogprobs, (t, i) => t < validLengths[i]!, INVALID_LOGPROB);
  const valuesFilled = fill(values, (t, i) => t <= validLengths[i]!, 0);

  // 4. score the truncated sequences at their last real token
  const scoreIds = padded.inputIds.map((p, i) => [...p, ...padTo(truncated[i]!, s.padTokenId)]);
  const scoreMask = padded.attentionMask.map((m, i) => [
    ...m,
    ...padTo(
      truncated[i]!.map(() => 1),
      0,
    ),
  ]);
  const raw = await parts.score({
    promptIds: promptIds.map((p) => p.slice()),
    responseIds: truncated,
    inputIds: scoreIds,
    attentionMask: scoreMask,
  });
  if (raw.length !== n || raw.some((x) => typeof x !== "number" || !Number.isFinite(x))) {
    throw new ConfigError(`the reward gave ${raw.length} values for ${n} responses (finite numbers needed)`, {
      field: "rewardModel",
    });
  }
  const containsEos = truncated.map((r) => s.eosTokenId !== undefined && r.includes(s.eosTokenId));
  const scores = raw.map((x, i) => (s.missingEosPenalty !== null && !containsEos[i] ? x - s.missingEosPenalty : x));
  const numEosTokens =
    s.eosTokenId === undefined ? 0 : newTokens.reduce((k, r) => k + r.filter((id) => id === s.eosTokenId).length, 0);

  return {
    contextLength: c,
    width,
    promptIds: promptIds.map((p) => p.slice()),
    queryResponses,
    attentionMask,
    positionIds,
    responses,
    generatedLengths,
    validLengths,
    logprobs,
    refLogprobs: refFilled,
    values: valuesFilled,
    scores,
    containsEos,
    numEosTokens,
  };
}
