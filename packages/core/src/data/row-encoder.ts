/**
 * Row tokenisation shared by the dataset tokenisers: the tokenizer's special prefix, the limits that let
 * long texts be cut before tokenising, chat-template rendering, the token-space prompt/completion split,
 * and the {@link RowProblem}s a row can raise.
 * @module
 */
import { ConfigError } from "../errors/index.js";
import type { TokenizerLike } from "../interfaces/index.js";
import { encodeLimited } from "./encode-limited.js";
import type { ReportBuilder } from "./report.js";
import type { Conversation, RowSource } from "./types.js";
import { DEFAULT_MAX_LENGTH, type TruncatedRow, type TruncationOptions, truncateRow } from "./truncate.js";

/** The ids the tokenizer's post-processor puts before the text (e.g. `[bos]`); found by probing once. */
export function specialPrefixIds(tokenizer: TokenizerLike): number[] {
  const probe = "a";
  const withSpecial = tokenizer.encode(probe, { addSpecialTokens: true });
  const plain = tokenizer.encode(probe, { addSpecialTokens: false });
  for (let k = 0; k + plain.length <= withSpecial.length; k++) {
    if (plain.every((id, j) => withSpecial[k + j] === id)) return withSpecial.slice(0, k);
  }
  return [];
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > ids.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

/** A row-level problem: a reason key for the report and a message for the error. */
export class RowProblem {
  constructor(
    readonly reason: string,
    readonly detail: string,
    readonly field?: string,
    readonly mismatch = false,
  ) {}
}

/** Shared tokenisation state: the tokenizer, its special prefix, and the resolved options. */
export class Encoder {
  readonly prefix: number[];
  /** The most tokens of a completion that can survive truncation (`maxLength`, `maxCompletionLength`). */
  readonly completionLimit: number | undefined;
  /** The most tokens of a prompt that matter: the end kept by `maxPromptLength`, or the drop test at `maxLength`. */
  readonly promptLimit: { side: "head" | "tail"; limit: number } | undefined;
  constructor(
    readonly tokenizer: TokenizerLike,
    readonly options: TruncationOptions & { chatTemplateKwargs?: Record<string, unknown> },
  ) {
    this.prefix = specialPrefixIds(tokenizer);
    // keep_end keeps a row's last tokens, so its text cannot be cut from the start before tokenising
    const maxLength =
      options.truncationMode === "keep_end"
        ? null
        : options.maxLength === undefined
          ? DEFAULT_MAX_LENGTH
          : options.maxLength;
    const limits = [maxLength, options.maxCompletionLength].filter((x): x is number => x != null);
    this.completionLimit = limits.length > 0 ? Math.min(...limits) : undefined;
    this.promptLimit =
      options.maxPromptLength != null
        ? { side: "tail", limit: options.maxPromptLength }
        : maxLength != null
          ? { side: "head", limit: maxLength }
          : undefined;
  }

  /** {@link encode}, of only the part of a long text the limits can keep (see {@link encodeLimited}). */
  encodeUpTo(text: string, limit: number | undefined, side: "head" | "tail" = "head"): number[] {
    return encodeLimited(text, limit, side, (t) => this.encode(t));
  }

  /** Encode without special tokens, then add the post-processor's prefix unless the text already starts with it (no doubled BOS). */
  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    return this.prefix.length === 0 || startsWith(ids, this.prefix) ? ids : [...this.prefix, ...ids];
  }

  eos(): number {
    const eos = this.tokenizer.eosTokenId;
    if (eos === undefined) {
      throw new ConfigError("the tokenizer has no eos token; standard-format completions need one appended");
    }
    return eos;
  }

  render(messages: Conversation, addGenerationPrompt: boolean, field: string): string {
    try {
      return this.tokenizer.applyChatTemplate(messages, { ...this.options.chatTemplateKwargs, addGenerationPrompt });
    } catch (err) {
      throw new RowProblem(
        "chat template failed",
        `chat template failed: ${err instanceof Error ? err.message : String(err)}`,
        field,
      );
    }
  }

  /** Standard style: prompt with special tokens, completion without, plus eos (as TRL for non-conversational). */
  standardPrompt(prompt: string): number[] {
    return this.encodeUpTo(prompt, this.promptLimit?.limit, this.promptLimit?.side);
  }
  standardCompletion(completion: string): number[] {
    const encode = (t: string) => this.tokenizer.encode(t, { addSpecialTokens: false });
    return [...encodeLimited(completion, this.completionLimit, "head", encode), this.eos()];
  }

  /** Conversational style: render prompt and prompt+completion, split in token space, check the prefix property. */
  conversationalPrompt(prompt: Conversation, completion: Conversation): { text: string; ids: number[] } {
    if (!this.tokenizer.hasChatTemplate) {
      throw new ConfigError("conversational data needs a tokenizer with a chat template");
    }
    const endsOnAssistant = prompt.at(-1)?.role === "assistant";
    const addGen = !endsOnAssistant && completion[0]?.role === "assistant";
    const text = this.render(prompt, addGen, "prompt");
    // the prompt's ids must be a prefix of the full render's, so only its head may be cut short
    const head = this.promptLimit?.side === "head" ? this.promptLimit.limit : undefined;
    return { text, ids: this.encodeUpTo(text, head) };
  }
  conversationalCompletion(prompt: Conversation, promptIds: number[], completion: Conversation, field: string) {
    const limit = this.completionLimit === undefined ? undefined : promptIds.length + this.completionLimit;
    const full = this.encodeUpTo(this.render([...prompt, ...completion], false, field), limit);
    if (!startsWith(full, promptIds)) {
      throw new RowProblem(
        "prompt not a token prefix",
        `the rendered prompt's ${promptIds.length} tokens are not a prefix of the rendered prompt+${field} tokens ` +
          "(chat template not prefix-preserving?)",
        field,
        true,
      );
    }
    return full.slice(promptIds.length);
  }

  /** {@link truncateRow} with the report: a dropped row is counted and gives undefined. */
  truncate(
    promptIds: number[],
    completions: number[][],
    builder: ReportBuilder,
    source: RowSource | undefined,
  ): TruncatedRow | undefined {
    const cut = truncateRow(promptIds, completions, this.options);
    if ("dropReason" in cut) {
      builder.drop(source, cut.dropReason);
      return undefined;
    }
    if (cut.truncated) builder.report.truncated++;
    return cut;
  }
}
