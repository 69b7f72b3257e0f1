/**
 * `generateText`: prompt text or a conversation in, generated text out, like transformers'
 * `TextGenerationPipeline` (chat template with the generation prompt, batched left padding,
 * only the new text returned).
 * @module
 */
import { ConfigError, type GenerateOptions } from "@prefkit/core";
import type { ApplyChatTemplateOptions, TemplateMessage } from "../tokenizer/chat-template.js";
import { padSequences } from "../tokenizer/padding.js";
import { stripDoubledBos } from "../tokenizer/sequence.js";
import type { PreTrainedTokenizer } from "../tokenizer/tokenizer.js";
import { generate } from "./generate.js";
import type { IncrementalCausalLM } from "./kv-cache.js";

/** One prompt: plain text (encoded with the tokenizer's special tokens) or a conversation (templated). */
export type TextPrompt = string | readonly TemplateMessage[];

/** Options of {@link generateText}: {@link GenerateOptions} plus the text-side settings. */
export interface GenerateTextOptions extends Omit<GenerateOptions, "attentionMask"> {
  /**
   * Extra chat-template options for conversations (e.g. `{ enable_thinking: false }` for Qwen3,
   * or `chatTemplate`). `addGenerationPrompt` is always true here.
   */
  chatTemplateOptions?: Omit<ApplyChatTemplateOptions, "tokenize" | "addGenerationPrompt">;
  /** Add the tokenizer's special tokens (e.g. BOS) to plain-text prompts. Default true, as HF's pipeline. */
  addSpecialTokens?: boolean;
  /** Drop special tokens (EOS, `<|im_end|>`) from the decoded text. Default true. */
  skipSpecialTokens?: boolean;
}

/** Result of {@link generateText} for one prompt. */
export interface GeneratedText {
  /** The decoded new tokens (the prompt is not repeated). */
  text: string;
  /** The new token ids, the stop token included. */
  tokenIds: number[];
  /** `tokenIds.length`. */
  numGeneratedTokens: number;
  /** True when the row ended on a stop token, false when it hit `maxNewTokens`. */
  finished: boolean;
  /** The prompt ids the model saw (no padding). */
  promptIds: number[];
}

/** What {@link generateText} needs from a tokenizer (a `PreTrainedTokenizer` has it all). */
export type TextTokenizer = Pick<
  PreTrainedTokenizer,
  "encode" | "decode" | "applyChatTemplate" | "bosTokenId" | "eosTokenId" | "padTokenId"
>;

function isBatch(input: TextPrompt | readonly TextPrompt[]): input is readonly TextPrompt[] {
  return Array.isArray(input) && input.length > 0 && (typeof input[0] === "string" || Array.isArray(input[0]));
}

/**
 * Generate text for one prompt or a batch of prompts.
 *
 * - A string is encoded with the tokenizer's special tokens (BOS for Llama-style tokenizers);
 *   a message array goes through the chat template with `addGenerationPrompt: true` and is
 *   tokenized without adding special tokens again, so BOS is never doubled.
 * - A batch is left-padded (pad id: the tokenizer's, else its eos, else 0) and generated in one
 *   loop; each row gives what it gives alone.
 * - Stop ids: `eosTokenId`/`stopTokenIds`, else the model's generation config, else the tokenizer's eos.
 *
 * ```ts
 * const { text } = await generateText(model, tokenizer, [{ role: "user", content: "Hi!" }], { maxNewTokens: 32 });
 * ```
 * @throws ConfigError for an empty batch or prompt, or a conversation without a chat template.
 */
export function generateText(
  model: IncrementalCausalLM,
  tokenizer: TextTokenizer,
  prompt: TextPrompt,
  options?: GenerateTextOptions,
): Promise<GeneratedText>;
export function generateText(
  model: IncrementalCausalLM,
  tokenizer: TextTokenizer,
  prompts: readonly TextPrompt[],
  options?: GenerateTextOptions,
): Promise<GeneratedText[]>;
export async function generateText(
  model: IncrementalCausalLM,
  tokenizer: TextTokenizer,
  input: TextPrompt | readonly TextPrompt[],
  options: GenerateTextOptions = {},
): Promise<GeneratedText | GeneratedText[]> {
  const batched = isBatch(input);
  const prompts: readonly TextPrompt[] = batched ? input : [input as TextPrompt];
  if (prompts.length === 0 || (Array.isArray(input) && input.length === 0)) {
    throw new ConfigError("no prompt given", { field: "prompts" });
  }
  const { chatTemplateOptions, addSpecialTokens, skipSpecialTokens, ...generateOptions } = options;
  const rows = prompts.map((p, row) => {
    const ids =
      typeof p === "string"
        ? tokenizer.encode(p, { addSpecialTokens: addSpecialTokens ?? true })
        : tokenizer.applyChatTemplate(p, { ...chatTemplateOptions, addGenerationPrompt: true, tokenize: true });
    const cleaned = stripDoubledBos(ids, tokenizer.bosTokenId);
    if (cleaned.length === 0) throw new ConfigError("the prompt encodes to no tokens", { field: "prompts", row });
    return cleaned;
  });
  const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const { inputIds, attentionMask } = padSequences(rows, { padTokenId, paddingSide: "left" });
  const hasStops =
    generateOptions.eosTokenId !== undefined ||
    generateOptions.stopTokenIds !== undefined ||
    (model.generationConfig?.eos_token_id ?? null) !== null;
  const out = await generate(model, inputIds, {
    ...generateOptions,
    attentionMask,
    ...(!hasStops && tokenizer.eosTokenId !== undefined ? { eosTokenId: tokenizer.eosTokenId } : {}),
    ...(generateOptions.padTokenId === undefined && model.generationConfig?.pad_token_id == null ? { padTokenId } : {}),
  });
  const results = out.newTokens.map(
    (tokenIds, r): GeneratedText => ({
      text: tokenizer.decode(tokenIds, { skipSpecialTokens: skipSpecialTokens ?? true }),
      tokenIds,
      numGeneratedTokens: out.numGeneratedTokens[r]!,
      finished: out.finished[r]!,
      promptIds: rows[r]!,
    }),
  );
  return batched ? results : results[0]!;
}
