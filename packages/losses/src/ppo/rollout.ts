/**
 * One on-policy rollout (TRL PPOv2, steps 1–5 of trl-parity.md): sample responses with the KV-cache generator
 * keeping the temperature-scaled log-probs, score them with the reference, truncate at the stop token,
 * read V per response token, and score the truncated sequences. Plain arrays out: the update turns
 * them into tensors per micro-batch. Evaluation runs the same steps with greedy decoding and no values.
 * GRPO and RLOO run the first part alone ({@link generateRollout}: no values, a reference only when β ≠ 0)
 * and score with their own reward functions.
 * @module
 */
import { type CausalLM, ConfigError, type ForwardInputs, type Rng, selectiveLogProbs, tf } from "@prefkit/core";
import type { ReferenceSource } from "../preference/reference.js";
import { leftPad } from "./prompts.js";
import { positionsFromMask, type RolloutSettings, samplePolicy } from "./sampling.js";

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
  /** The dataset's other columns, one value per row (reward functions get them; see `RewardFunctionInputs`). */
  columns?: Record<string, unknown[]>;
}

/** Collaborators of {@link generateRollout}. */
export interface GenerationParts {
  /** The policy, and V per position `[B, T]` (a `PolicyAndValueModel`; without `values`, as in evaluation, they are 0). */
  model: { policy: CausalLM; values?(inputs: ForwardInputs): tf.Tensor2D };
  /** The frozen reference; `undefined` runs no reference pass (GRPO and RLOO with β = 0). */
  reference: ReferenceSource | undefined;
  /** Sampling stream (the trainer's, so a resumed run continues it). */
  rng: Rng;
}

/** Collaborators of {@link collectRollout}. */
export interface RolloutParts extends GenerationParts {
  /** The frozen reference. */
  reference: ReferenceSource;
  /** Scores of the truncated sequences (reward model or reward function). */
  score: (rows: ScoreRows) => Promise<ReadonlyArray<number | null>>;
}

/** Seconds a rollout spent in each phase (the benches' time split, and the `time/*` metrics). */
export interface RolloutTimings {
  /** Sampling the responses (`generate()`, with their log π_old). */
  generation: number;
  /** The reference pass (0 without a reference). */
  reference: number;
  /** PPO's value pass (0 without values). */
  value: number;
  /** Reward models and reward functions. */
  scoring: number;
}

/**
 * An update's seconds per phase as log metrics (documented in docs/guides/training.md, "Where an
 * on-policy update's time goes"): `time/generation`, `time/reference`, `time/value`, `time/scoring` from
 * the rollout, and `time/rollout`, the whole rollout phase (those plus advantages and bookkeeping).
 */
export function rolloutTimeMetrics(timings: RolloutTimings, rolloutSeconds: number): Record<string, number> {
  return {
    "time/generation": timings.generation,
    "time/reference": timings.reference,
    "time/value": timings.value,
    "time/scoring": timings.scoring,
    "time/rollout": rolloutSeconds,
  };
}

/** `time/optimization` (the update's optimizer steps: every micro-batch's passes) and `time/update` (all of it). */
export function optimizationTimeMetrics(rolloutStarted: number, optimizationStarted: number): Record<string, number> {
  const now = performance.now();
  return {
    "time/optimization": (now - optimizationStarted) / 1000,
    "time/update": (now - rolloutStarted) / 1000,
  };
}

/** A sampled rollout batch of B rows with responses padded to width W, before scoring. Row-major plain arrays. */
export interface GeneratedRollout {
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
  /** `[B, W]` log π_ref, same scaling and fill; `undefined` without a reference. */
  refLogprobs: number[][] | undefined;
  /** `[B, W]` V before each response token, 0 past `validLengths` + 1 (TRL's `padding_mask_p1`). */
  values: number[][];
  /** Whether the truncated response contains eos. */
  containsEos: boolean[];
  /** eos tokens among the generated tokens (`val/num_eos_tokens`). */
  numEosTokens: number;
  /** Seconds per phase. */
  timings: RolloutTimings;
}

/** A scored PPO rollout: a {@link GeneratedRollout} with its reference log-probs and scores. */
export interface Rollout extends GeneratedRollout {
  /** `[B, W]` log π_ref, same scaling and fill as `logprobs`. */
  refLogprobs: number[][];
  /** Score per row, the eos penalty applied. */
  scores: number[];
}

/** Truncate after the first `stopTokenId` (kept). Returns the kept prefix. */
export function truncateResponse(response: readonly number[], stopTokenId: number | null): number[] {
  if (stopTokenId === null) return response.slice();
  const at = response.indexOf(stopTokenId);
  return at < 0 ? response.slice() : response.slice(0, at + 1);
}

function chunks(n: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i += size) out.push([i, Math.min(n, i + size)]);
  return out;
}

/** The `rows` of a row-major matrix as a `[rows.length, width]` tensor (a micro-batch of a rollout). */
export function rowsTensor(
  matrix: readonly (readonly number[])[],
  rows: readonly number[],
  dtype: "float32" | "int32" = "float32",
): tf.Tensor2D {
  return tf.tensor2d(
    rows.flatMap((i) => matrix[i]!),
    [rows.length, matrix[0]!.length],
    dtype,
  );
}

/**
 * The logits that predict the `width` response tokens of a `[b, C + W, V]` forward, divided by
 * (temperature + 1e-7) as TRL's sampling and training passes do: `[b, W, V]`.
 */
export function responseLogits(
  logits: tf.Tensor3D,
  contextLength: number,
  width: number,
  temperature: number,
): tf.Tensor3D {
  const [b, , v] = logits.shape;
  return tf.div(tf.slice(logits, [0, contextLength - 1, 0], [b, width, v]), temperature + 1e-7) as tf.Tensor3D;
}

/** log softmax(logits / (T + 1e-7)) of the response tokens, `[b, W]`, from a full forward. */
export function responseLogprobs(
  net: CausalLM,
  inputs: ForwardInputs,
  responses: number[][],
  contextLength: number,
  temperature: number,
): tf.Tensor2D {
  return tf.tidy(() =>
    selectiveLogProbs(
      responseLogits(net.forward(inputs).logits, contextLength, responses[0]!.length, temperature),
      responses,
    ),
  );
}

const seconds = (since: number) => (performance.now() - since) / 1000;

/**
 * Sample one rollout batch and run the no-gradient passes over it (reference, values), without scoring.
 * `promptIds` are unpadded; they are left-padded once for the whole batch, then processed in chunks of
 * `localRolloutForwardBatchSize`.
 */
export async function generateRollout(
  promptIds: readonly (readonly number[])[],
  parts: GenerationParts,
  s: RolloutSettings,
): Promise<GeneratedRollout> {
  const padded = leftPad(promptIds, s.padTokenId);
  const c = padded.length;
  const n = promptIds.length;
  const parts_ = chunks(n, s.localRolloutForwardBatchSize);

  // 1. sample, keeping temperature-scaled log π_old
  let started = performance.now();
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
  const generation = seconds(started);
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
  let referenceSeconds = 0;
  let valueSeconds = 0;
  const refLogprobs: number[][] = [];
  const values: number[][] = [];
  const reference = parts.reference;
  for (const [a, b] of parts_) {
    const inputs: ForwardInputs = {
      inputIds: queryResponses.slice(a, b),
      attentionMask: attentionMask.slice(a, b),
      positionIds: positionIds.slice(a, b),
    };
    if (reference !== undefined) {
      started = performance.now();
      const ref = reference.run((net) => responseLogprobs(net, inputs, responses.slice(a, b), c, s.temperature));
      refLogprobs.push(...((await ref.array()) as number[][]));
      ref.dispose();
      referenceSeconds += seconds(started);
    }
    const valueFn = parts.model.values?.bind(parts.model);
    if (valueFn === undefined) {
      for (let i = a; i < b; i++) values.push(new Array<number>(width).fill(0));
      continue;
    }
    started = performance.now();
    const v = tf.tidy(() => tf.slice(valueFn(inputs), [0, c - 1], [b - a, width]));
    values.push(...((await v.array()) as number[][]));
    v.dispose();
    valueSeconds += seconds(started);
  }
  const fill = (rows: number[][], keep: (t: number, i: number) => boolean, value: number) =>
    rows.map((row, i) => row.map((x, t) => (keep(t, i) ? x : value)));
  const valid = (t: number, i: number) => t < validLengths[i]!;
  const containsEos = truncated.map((r) => s.eosTokenId !== undefined && r.includes(s.eosTokenId));
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
    logprobs: fill(
      oldLogprobs.map((r) => padTo(r, INVALID_LOGPROB)),
      valid,
      INVALID_LOGPROB,
    ),
    refLogprobs: reference === undefined ? undefined : fill(refLogprobs, valid, INVALID_LOGPROB),
    values: fill(values, (t, i) => t <= validLengths[i]!, 0),
    containsEos,
    numEosTokens:
      s.eosTokenId === undefined ? 0 : newTokens.reduce((k, r) => k + r.filter((id) => id === s.eosTokenId).length, 0),
    timings: { generation, reference: referenceSeconds, value: valueSeconds, scoring: 0 },
  };
}

/**
 * What a scorer reads of a rollout: each prompt followed by its truncated response (the stop token kept)
 * and right padding with `padTokenId`, the mask from lengths.
 */
export function scoreRows(rollout: GeneratedRollout, padTokenId: number): ScoreRows {
  const c = rollout.contextLength;
  const responseIds = rollout.responses.map((r, i) => r.slice(0, rollout.validLengths[i]));
  const tail = (row: number[], fill: number) => new Array<number>(rollout.width - row.length).fill(fill);
  return {
    promptIds: rollout.promptIds.map((p) => p.slice()),
    responseIds,
    inputIds: rollout.queryResponses.map((q, i) => [
      ...q.slice(0, c),
      ...responseIds[i]!,
      ...tail(responseIds[i]!, padTokenId),
    ]),
    attentionMask: rollout.attentionMask.map((m, i) => [
      ...m.slice(0, c),
      ...responseIds[i]!.map(() => 1),
      ...tail(responseIds[i]!, 0),
    ]),
  };
}

/**
 * Sample and score one PPO rollout batch (no gradients anywhere): {@link generateRollout}, then the scores
 * of the truncated sequences at their last real token, minus `missingEosPenalty` for rows without eos.
 * @throws ConfigError when the reward gives other than one finite number per response.
 */
export async function collectRollout(
  promptIds: readonly (readonly number[])[],
  parts: RolloutParts,
  s: RolloutSettings,
): Promise<Rollout> {
  const generated = await generateRollout(promptIds, parts, s);
  const n = promptIds.length;

  // 4. score the truncated sequences at their last real token
  const started = performance.now();
  const raw = await parts.score(scoreRows(generated, s.padTokenId));
  if (raw.length !== n || raw.some((x) => typeof x !== "number" || !Number.isFinite(x))) {
    throw new ConfigError(`the reward gave ${raw.length} values for ${n} responses (finite numbers needed)`, {
      field: "rewardModel",
    });
  }
  const scores = (raw as readonly number[]).map((x, i) =>
    s.missingEosPenalty !== null && !generated.containsEos[i] ? x - s.missingEosPenalty : x,
  );
  return {
    ...generated,
    refLogprobs: generated.refLogprobs!,
    scores,
    timings: { ...generated.timings, scoring: seconds(started) },
  };
}
