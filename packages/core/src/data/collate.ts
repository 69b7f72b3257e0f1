import { ConfigError } from "../errors/index.js";
import type { TokenizedCompletion, TokenizedPreference } from "./types.js";

/** Options shared by the collators. */
export interface CollateOptions {
  /** Id written into padding positions. Masks never depend on it, so it may equal eos. */
  padTokenId: number;
  /** Round the padded length up to a multiple of this (fewer distinct shapes, fewer kernel recompiles). */
  padToMultipleOf?: number;
}

/** A DPO batch of 2B rows: the B chosen sequences first, then the B rejected ones, right-padded. */
export interface DpoBatch {
  /** Number of pairs B (the batch has 2B rows). */
  batchSize: number;
  /** [2B][T] prompt+completion ids, right-padded with the pad id. */
  inputIds: number[][];
  /** [2B][T] 1 on real tokens (position < promptLength + completionLength), else 0. */
  attentionMask: number[][];
  /** [2B][T] 1 on completion tokens (promptLength ≤ position < promptLength + completionLength), else 0. */
  completionMask: number[][];
  /** [2B] prompt lengths. */
  promptLengths: number[];
  /** [2B] completion lengths. */
  completionLengths: number[];
  /** [B] per-pair margins, when every example has one. */
  margins?: number[];
}

/** A reward-model batch of 2B rows (chosen first, then rejected), right-padded. */
export interface RewardBatch {
  /** Number of pairs B (the batch has 2B rows). */
  batchSize: number;
  /** [2B][T] prompt+completion ids, right-padded. */
  inputIds: number[][];
  /** [2B][T] 1 on real tokens, from the lengths. */
  attentionMask: number[][];
  /** [2B] real lengths. */
  lengths: number[];
  /** [2B] index of the last real token (length − 1): where the score is pooled. */
  lastTokenIndex: number[];
  /** [B] per-pair margins, when every example has one. */
  margins?: number[];
}

/** An SFT batch of B rows, right-padded. */
export interface SftBatch {
  /** [B][T] ids, right-padded. */
  inputIds: number[][];
  /** [B][T] 1 on real tokens, from the lengths. */
  attentionMask: number[][];
  /** [B][T] 1 on completion tokens. */
  completionMask: number[][];
  /** [B][T] unshifted labels (the model shifts): the id where the loss applies, `ignoreIndex` elsewhere. */
  labels: number[][];
  /** [B] prompt lengths. */
  promptLengths: number[];
  /** [B] completion lengths. */
  completionLengths: number[];
}

function paddedLength(maxLen: number, multiple: number | undefined): number {
  if (multiple === undefined || multiple <= 1) return maxLen;
  return Math.ceil(maxLen / multiple) * multiple;
}

function checkBatch(n: number, what: string): void {
  if (n === 0) throw new ConfigError(`${what}: cannot collate an empty batch`);
}

/** Pad sequences to a common length and build the masks from prompt/completion lengths (never from ids). */
function padRows(
  prompts: readonly number[][],
  completions: readonly number[][],
  options: CollateOptions,
): { inputIds: number[][]; attentionMask: number[][]; completionMask: number[][]; length: number } {
  const length = paddedLength(
    Math.max(...prompts.map((p, i) => p.length + completions[i]!.length)),
    options.padToMultipleOf,
  );
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  const completionMask: number[][] = [];
  for (let i = 0; i < prompts.length; i++) {
    const p = prompts[i]!;
    const c = completions[i]!;
    const real = p.length + c.length;
    const ids = new Array<number>(length);
    const att = new Array<number>(length);
    const comp = new Array<number>(length);
    for (let t = 0; t < length; t++) {
      ids[t] = t < p.length ? p[t]! : t < real ? c[t - p.length]! : options.padTokenId;
      att[t] = t < real ? 1 : 0;
      comp[t] = t >= p.length && t < real ? 1 : 0;
    }
    inputIds.push(ids);
    attentionMask.push(att);
    completionMask.push(comp);
  }
  return { inputIds, attentionMask, completionMask, length };
}

function margins(examples: readonly { margin?: number }[]): number[] | undefined {
  return examples.every((e) => e.margin !== undefined) ? examples.map((e) => e.margin!) : undefined;
}

/** The prompts of the 2B rows of a pair batch: the chosen sequences', then the rejected ones'. */
function pairPrompts(examples: readonly TokenizedPreference[]): number[][] {
  return [...examples.map((e) => e.promptIds), ...examples.map((e) => e.rejectedPromptIds ?? e.promptIds)];
}

/**
 * Collate tokenised pairs for DPO: chosen and rejected concatenated into one batch of 2B rows (chosen first),
 * right-padded with `padTokenId`, with `attentionMask` and `completionMask` built from the lengths, so a pad id
 * equal to eos never hides a real eos.
 */
export function collateDpo(examples: readonly TokenizedPreference[], options: CollateOptions): DpoBatch {
  checkBatch(examples.length, "collateDpo");
  const prompts = pairPrompts(examples);
  const completions = [...examples.map((e) => e.chosenIds), ...examples.map((e) => e.rejectedIds)];
  const { inputIds, attentionMask, completionMask } = padRows(prompts, completions, options);
  const batch: DpoBatch = {
    batchSize: examples.length,
    inputIds,
    attentionMask,
    completionMask,
    promptLengths: prompts.map((p) => p.length),
    completionLengths: completions.map((c) => c.length),
  };
  const m = margins(examples);
  if (m !== undefined) batch.margins = m;
  return batch;
}

/**
 * Collate tokenised pairs for reward modelling: 2B rows (chosen first), right-padded, with the real lengths
 * and the last-real-token index for score pooling (from lengths, never from pad-id equality).
 */
export function collateReward(examples: readonly TokenizedPreference[], options: CollateOptions): RewardBatch {
  checkBatch(examples.length, "collateReward");
  const prompts = pairPrompts(examples);
  const completions = [...examples.map((e) => e.chosenIds), ...examples.map((e) => e.rejectedIds)];
  const { inputIds, attentionMask } = padRows(prompts, completions, options);
  const lengths = prompts.map((p, i) => p.length + completions[i]!.length);
  const batch: RewardBatch = {
    batchSize: examples.length,
    inputIds,
    attentionMask,
    lengths,
    lastTokenIndex: lengths.map((l) => l - 1),
  };
  const m = margins(examples);
  if (m !== undefined) batch.margins = m;
  return batch;
}

/** Options of {@link collateSft}. */
export interface SftCollateOptions extends CollateOptions {
  /** Train on completion tokens only (TRL `completion_only_loss`, default true). */
  completionOnlyLoss?: boolean;
  /** Label value the loss ignores (default −100, as in transformers). */
  ignoreIndex?: number;
}

/**
 * Collate SFT examples: prompt+completion right-padded, masks from lengths, and labels equal to the ids
 * where the loss applies (completion tokens when `completionOnlyLoss`, all real tokens otherwise) and
 * `ignoreIndex` elsewhere, padding included.
 */
export function collateSft(examples: readonly TokenizedCompletion[], options: SftCollateOptions): SftBatch {
  checkBatch(examples.length, "collateSft");
  const prompts = examples.map((e) => e.promptIds);
  const completions = examples.map((e) => e.completionIds);
  const { inputIds, attentionMask, completionMask } = padRows(prompts, completions, options);
  const ignore = options.ignoreIndex ?? -100;
  const lossMask = (options.completionOnlyLoss ?? true) ? completionMask : attentionMask;
  const labels = inputIds.map((row, i) => row.map((id, t) => (lossMask[i]![t] === 1 ? id : ignore)));
  return {
    inputIds,
    attentionMask,
    completionMask,
    labels,
    promptLengths: prompts.map((p) => p.length),
    completionLengths: completions.map((c) => c.length),
  };
}
