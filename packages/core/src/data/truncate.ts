/**
 * Length limits of tokenised rows: TRL's `max_length` with its `truncation_mode`, plus prefkit's
 * `maxPromptLength` / `maxCompletionLength`, applied to a prompt and its completion(s).
 * @module
 */
import type { TruncationMode } from "./types.js";

/** TRL's `max_length` default. */
export const DEFAULT_MAX_LENGTH = 1024;

/** The length limits of {@link truncateRow} (part of `TokenizeOptions`). */
export interface TruncationOptions {
  /**
   * Maximum prompt+completion length in tokens (TRL `max_length`, default 1024; `null` disables).
   * How an over-long row is cut is `truncationMode`'s choice.
   */
  maxLength?: number | null;
  /**
   * Which end of an over-long prompt+completion `maxLength` keeps (TRL `truncation_mode`). `keep_start`
   * (default): completions are cut keeping their start, and rows whose prompt alone reaches `maxLength` are
   * dropped and counted. `keep_end`: each sequence keeps its last `maxLength` tokens (the prompt loses its
   * start first), no row is dropped, and a pair's two sequences may keep different prompt tails
   * (`TokenizedPreference.rejectedPromptIds`). Only applies with `overlong: "truncate"`.
   */
  truncationMode?: TruncationMode;
  /** Maximum prompt length (TRL `max_prompt_length`); longer prompts keep their END. Default: none. */
  maxPromptLength?: number | null;
  /** Maximum completion length (TRL `max_completion_length`); longer completions keep their start. Default: none. */
  maxCompletionLength?: number | null;
  /**
   * What to do with a row longer than `maxLength`: `truncate` (default, DPO/SFT) or `drop` (reward modelling,
   * where TRL drops rather than truncates). Either way a prompt that alone reaches `maxLength` is dropped.
   */
  overlong?: "truncate" | "drop";
}

/** A row after {@link truncateRow}: `prompts[i] ++ completions[i]` is the i-th sequence. */
export interface TruncatedRow {
  /** The prompt each sequence keeps (the same array for every completion unless `keep_end` cut them apart). */
  prompts: number[][];
  /** The completions, in order. */
  completions: number[][];
  /** Whether anything was cut. */
  truncated: boolean;
}

/**
 * Apply `maxPromptLength`, `maxCompletionLength` and `maxLength` (see {@link TruncationOptions}) to a prompt
 * and its completions. Returns the row each sequence keeps, or the reason the row must be dropped.
 */
export function truncateRow(
  promptIds: number[],
  completions: number[][],
  options: TruncationOptions,
): TruncatedRow | { dropReason: string } {
  const { maxPromptLength, maxCompletionLength } = options;
  const maxLength = options.maxLength === undefined ? DEFAULT_MAX_LENGTH : options.maxLength;
  let truncated = false;
  if (maxPromptLength != null && promptIds.length > maxPromptLength) {
    promptIds = promptIds.slice(promptIds.length - maxPromptLength);
    truncated = true;
  }
  if (maxCompletionLength != null) {
    completions = completions.map((c) => {
      if (c.length <= maxCompletionLength) return c;
      truncated = true;
      return c.slice(0, maxCompletionLength);
    });
  }
  if (maxLength != null && options.truncationMode === "keep_end" && options.overlong !== "drop") {
    const cut = keepEnd(promptIds, completions, maxLength);
    return { ...cut, truncated: truncated || cut.truncated };
  }
  if (maxLength != null) {
    if (promptIds.length >= maxLength) return { dropReason: "prompt reaches maxLength" };
    const room = maxLength - promptIds.length;
    if (completions.some((c) => c.length > room)) {
      if (options.overlong === "drop") return { dropReason: "exceeds maxLength" };
      truncated = true;
      completions = completions.map((c) => (c.length > room ? c.slice(0, room) : c));
    }
  }
  return { prompts: completions.map(() => promptIds), completions, truncated };
}

/**
 * `keep_end` truncation, as TRL's `DataCollatorForPreference.torch_call` with `truncation_mode="keep_end"`:
 * each prompt+completion keeps its last `maxLength` tokens (`ids[-max_length:]`, the completion mask cut
 * alike), so the prompt loses its start first and a completion longer than `maxLength` keeps its end.
 * Nothing is dropped (TRL's `_prepare_dataset` drops prompts reaching `max_length` only with `keep_start`).
 */
function keepEnd(promptIds: number[], completions: number[][], maxLength: number): TruncatedRow {
  let truncated = false;
  const prompts = completions.map((c) => {
    const keptPrompt = Math.min(promptIds.length, Math.max(0, maxLength - c.length));
    if (keptPrompt === promptIds.length) return promptIds;
    truncated = true;
    return promptIds.slice(promptIds.length - keptPrompt);
  });
  const kept = completions.map((c) => {
    if (c.length <= maxLength) return c;
    truncated = true;
    return c.slice(c.length - maxLength);
  });
  return { prompts, completions: kept, truncated };
}
