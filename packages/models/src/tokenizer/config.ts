/**
 * The parts of Hugging Face's `tokenizer_config.json`, `special_tokens_map.json` and
 * `generation_config.json` that prefkit reads, and how special tokens are resolved from them.
 * @module
 */
import { ConfigError } from "@prefkit/core";

/** A special token as HF files store it: a string, an AddedToken object `{content, ...}`, or null. */
export type AddedTokenLike = string | { content: string; [key: string]: unknown } | null | undefined;

/** One named template, as in a `chat_template` list (`[{name: "default", template: "..."}]`). */
export interface NamedChatTemplate {
  /** Template name, e.g. `default`, `tool_use`, `rag`. */
  name: string;
  /** Jinja source. */
  template: string;
}

/** Fields of `tokenizer_config.json` that prefkit uses (snake_case as in the file). Others pass through. */
export interface TokenizerConfigJson {
  /** Beginning-of-sequence token. */
  bos_token?: AddedTokenLike;
  /** End-of-sequence token. */
  eos_token?: AddedTokenLike;
  /** Padding token; null when the model has none. */
  pad_token?: AddedTokenLike;
  /** Unknown-token. */
  unk_token?: AddedTokenLike;
  /** Llama-family tokenizers: prepend BOS on encode (transformers' default true for those classes). */
  add_bos_token?: boolean;
  /** Llama-family tokenizers: append EOS on encode (default false). */
  add_eos_token?: boolean;
  /** `"left"` or `"right"`: default padding side. */
  padding_side?: string;
  /** `"left"` or `"right"`: default truncation side. */
  truncation_side?: string;
  /** Longest input the model takes; HF writes `int(1e30)` for "no limit". */
  model_max_length?: number;
  /** Jinja chat template, or a list of named templates. */
  chat_template?: string | NamedChatTemplate[];
  /** Decoder clean-up of spaces before punctuation. */
  clean_up_tokenization_spaces?: boolean;
  /** transformers class name, e.g. `LlamaTokenizer`, `Qwen2Tokenizer`, `PreTrainedTokenizerFast`. */
  tokenizer_class?: string;
  /** More tokens that `skipSpecialTokens` drops when decoding. */
  additional_special_tokens?: AddedTokenLike[];
  /** Any other field, passed through to `@huggingface/tokenizers`. */
  [key: string]: unknown;
}

/** The four special-token roles prefkit tracks. */
export type SpecialTokenRole = "bos" | "eos" | "pad" | "unk";

/** A special token string per role; `undefined` when the model has none. */
export type SpecialTokenStrings = Partial<Record<SpecialTokenRole, string>>;

/** Fallback ids per role, as `generation_config.json` / `config.json` hold them (`eos_token_id` may be a list). */
export type SpecialTokenIds = Partial<Record<SpecialTokenRole, number | number[] | null>>;

/** The text of a special-token entry, whether it is a plain string or an AddedToken object. */
export function tokenContent(value: AddedTokenLike | unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** Reads `bos_token`, `eos_token`, `pad_token` and `unk_token` from a config-shaped object. */
export function specialTokenStrings(source: Record<string, unknown> | undefined): SpecialTokenStrings {
  const out: SpecialTokenStrings = {};
  if (!source) return out;
  for (const role of ["bos", "eos", "pad", "unk"] as const) {
    const content = tokenContent(source[`${role}_token`]);
    if (content !== undefined) out[role] = content;
  }
  return out;
}

/** Reads `bos_token_id`, `eos_token_id`, `pad_token_id` and `unk_token_id` from a config-shaped object. */
export function specialTokenIds(source: Record<string, unknown> | undefined): SpecialTokenIds {
  const out: SpecialTokenIds = {};
  if (!source) return out;
  for (const role of ["bos", "eos", "pad", "unk"] as const) {
    const v = source[`${role}_token_id`];
    if (typeof v === "number" || (Array.isArray(v) && v.every((x) => typeof x === "number"))) out[role] = v;
  }
  return out;
}

/** `model_max_length` values at or above this are HF's "no limit" sentinel (`int(1e30)`). */
export const NO_MODEL_MAX_LENGTH = 1e15;

/**
 * A `padding_side` or `truncation_side` value: `"right"` when unset (HF's default).
 * @throws ConfigError naming the field when it is neither `"left"` nor `"right"`.
 */
export function configuredSide(value: unknown, field: string, file: string | undefined): "left" | "right" {
  if (value === undefined || value === null) return "right";
  if (value === "left" || value === "right") return value;
  throw new ConfigError(`must be "left" or "right", got ${JSON.stringify(value)}`, { file, field });
}
