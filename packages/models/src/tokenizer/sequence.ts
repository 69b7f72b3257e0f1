/**
 * Token-space helpers for chat data: prefix checks, the prompt/completion split and doubled-BOS repair.
 * @module
 */

/** Number of leading ids that `a` and `b` share. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * True when `prefix` is a token prefix of `full`. A data pipeline that tokenizes a rendered
 * prompt and the rendered prompt+completion separately must check this before it slices the
 * completion off at `prefix.length`; Qwen3's stock template, for one, can fail it.
 */
export function isPrefix(prefix: readonly number[], full: readonly number[]): boolean {
  return prefix.length <= full.length && commonPrefixLength(prefix, full) === prefix.length;
}

/**
 * Drop the duplicate when `ids` starts with BOS twice. That happens when a chat template that
 * already writes `bos_token` is tokenized with special tokens added again (the HF default of
 * `tokenizer(text)`). Returns `ids` unchanged (same array) otherwise, or when `bosTokenId` is
 * undefined.
 */
export function stripDoubledBos(ids: readonly number[], bosTokenId: number | undefined): number[] {
  if (bosTokenId !== undefined && ids.length >= 2 && ids[0] === bosTokenId && ids[1] === bosTokenId) {
    return ids.slice(1);
  }
  return ids as number[];
}

/** Result of `PreTrainedTokenizer.tokenizePromptCompletion`. */
export interface PromptCompletionIds {
  /** Prompt ids: the rendered prompt when {@link prefixPreserving}, else the common prefix of the two renderings. */
  promptIds: number[];
  /** The rest of the full conversation's ids. `promptIds` + `completionIds` is always the full conversation. */
  completionIds: number[];
  /** True when the rendered prompt's ids are a token prefix of the full conversation's ids. */
  prefixPreserving: boolean;
}

/**
 * Split a conversation's ids into prompt and completion: at the end of `promptIds` when they are a
 * prefix of `fullIds`, else at the longest common prefix (TRL's common-prefix rule, in tokens).
 */
export function splitPromptCompletion(promptIds: number[], fullIds: number[]): PromptCompletionIds {
  if (isPrefix(promptIds, fullIds)) {
    return { promptIds, completionIds: fullIds.slice(promptIds.length), prefixPreserving: true };
  }
  const k = commonPrefixLength(promptIds, fullIds);
  return { promptIds: fullIds.slice(0, k), completionIds: fullIds.slice(k), prefixPreserving: false };
}
