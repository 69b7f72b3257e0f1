/**
 * The PPO prompt set: token ids, raw prompts (strings, or message lists rendered with the tokenizer's chat
 * template, e.g. Mistral's `[INST] … [/INST]`), or a JSON/JSONL file of them; and left padding for
 * generation.
 * @module
 */
import {
  type ChatMessage,
  ConfigError,
  DatasetError,
  conversationProblem,
  isConversation,
  loadDataset,
  rowsFromObjects,
  type SourcedRow,
  specialPrefixIds,
  type TokenizerLike,
} from "@prefkit/core";

/** A tokenised PPO prompt (TRL's PPO datasets carry `input_ids`). */
export interface TokenizedPrompt {
  /** Prompt token ids, special tokens included. */
  inputIds: number[];
  /** The row's other fields (e.g. a reference `answer`), handed to reward functions; absent when there are none. */
  columns?: Record<string, unknown>;
}

/** The fields of a prompt row that are the prompt itself (the rest are the row's extra columns). */
const PROMPT_FIELDS = new Set(["prompt", "inputIds", "input_ids"]);

/**
 * A PPO prompt dataset:
 * - tokenised rows `{ inputIds }` (or TRL's `{ input_ids }`), used as given;
 * - raw rows `{ prompt }` where `prompt` is a string (encoded with special tokens, BOS never doubled) or a
 *   message list (rendered with the tokenizer's chat template with `addGenerationPrompt`, then encoded);
 * - a JSON / JSONL(.gz) file path of raw rows.
 */
export type PromptDatasetInput = readonly TokenizedPrompt[] | readonly Record<string, unknown>[] | string;

/** Options of {@link tokenizePrompts}. */
export interface TokenizePromptsOptions {
  /** Keep only the last `maxPromptLength` tokens of longer prompts. Default: no limit. */
  maxPromptLength?: number | null;
  /** Extra chat-template variables. */
  chatTemplateKwargs?: Record<string, unknown>;
}

const isIdList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);

/**
 * Encode one prompt: strings with the tokenizer's special prefix (BOS) added once; message lists through
 * the chat template with the generation prompt, without a doubled BOS.
 * @throws ConfigError when a message list meets a tokenizer without a chat template.
 */
export function encodePrompt(
  prompt: string | ChatMessage[],
  tokenizer: TokenizerLike,
  chatTemplateKwargs: Record<string, unknown> = {},
): number[] {
  const prefix = specialPrefixIds(tokenizer);
  let text: string;
  if (typeof prompt === "string") {
    text = prompt;
  } else {
    if (!tokenizer.hasChatTemplate) {
      throw new ConfigError("conversational prompts need a tokenizer with a chat template", { field: "prompt" });
    }
    const endsOnUser = prompt.at(-1)?.role !== "assistant";
    text = tokenizer.applyChatTemplate(prompt, { ...chatTemplateKwargs, addGenerationPrompt: endsOnUser });
  }
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const starts = prefix.length > 0 && prefix.every((id, i) => ids[i] === id);
  return prefix.length === 0 || starts ? ids : [...prefix, ...ids];
}

/**
 * Resolve a {@link PromptDatasetInput} to tokenised prompts.
 * @throws DatasetError naming the row and field of a malformed row; ConfigError when raw rows come without a tokenizer.
 */
export async function tokenizePrompts(
  input: PromptDatasetInput,
  tokenizer: TokenizerLike | undefined,
  options: TokenizePromptsOptions = {},
  field = "trainDataset",
): Promise<TokenizedPrompt[]> {
  let rows: SourcedRow[];
  if (typeof input === "string") rows = (await loadDataset(input)).rows;
  else {
    if (input.length === 0) throw new DatasetError("dataset is empty (no rows)", { field });
    rows = rowsFromObjects(input as readonly Record<string, unknown>[]);
  }
  const max = options.maxPromptLength ?? null;
  return rows.map(({ data, source }) => {
    const where = { ...source, field };
    let ids: number[];
    const given = data["inputIds"] ?? data["input_ids"];
    if (given !== undefined) {
      if (!isIdList(given)) throw new DatasetError("inputIds must be a list of token ids", where);
      ids = given.slice();
    } else {
      const prompt = data["prompt"];
      if (typeof prompt !== "string" && !isConversation(prompt)) {
        throw new DatasetError('expected "prompt" (a string or a message list) or "inputIds"', where);
      }
      const problem = typeof prompt === "string" ? undefined : conversationProblem(prompt, "prompt");
      if (problem !== undefined) throw new DatasetError(problem.detail, { ...source, field: problem.at ?? "prompt" });
      if (tokenizer === undefined) {
        throw new ConfigError("raw prompts need a tokenizer: pass processingClass", { field: "processingClass" });
      }
      ids = encodePrompt(prompt, tokenizer, options.chatTemplateKwargs);
    }
    if (ids.length === 0) throw new DatasetError("the prompt has no tokens", where);
    if (max !== null && ids.length > max) ids = ids.slice(ids.length - max);
    const columns = Object.entries(data).filter(([k]) => !PROMPT_FIELDS.has(k));
    return columns.length === 0 ? { inputIds: ids } : { inputIds: ids, columns: Object.fromEntries(columns) };
  });
}

/** Prompts left-padded to one length, as generation needs them. */
export interface LeftPadded {
  /** `[B, C]` ids, `padTokenId` before each row's prompt. */
  inputIds: number[][];
  /** `[B, C]`, 0 on padding, 1 on prompt tokens. */
  attentionMask: number[][];
  /** C, the context length. */
  length: number;
}

/** Left-pad `rows` to their longest length with `padTokenId` (masks from lengths, never from ids). */
export function leftPad(rows: readonly (readonly number[])[], padTokenId: number): LeftPadded {
  const length = Math.max(...rows.map((r) => r.length));
  return {
    inputIds: rows.map((r) => [...new Array<number>(length - r.length).fill(padTokenId), ...r]),
    attentionMask: rows.map((r) => [...new Array<number>(length - r.length).fill(0), ...r.map(() => 1)]),
    length,
  };
}
