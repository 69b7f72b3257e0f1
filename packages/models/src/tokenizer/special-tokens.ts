/**
 * Which special tokens a tokenizer has, and which of them `encode` puts around a text.
 * @module
 */
import type { Tokenizer } from "@huggingface/tokenizers";
import { ConfigError } from "@prefkit/core";
import {
  type SpecialTokenIds,
  type SpecialTokenRole,
  type SpecialTokenStrings,
  specialTokenStrings,
  type TokenizerConfigJson,
} from "./config.js";

/** A special token's string and id (undefined when the string is not in the vocabulary). */
export interface SpecialToken {
  /** The token string. */
  token: string;
  /** Its id, if the vocabulary has it. */
  id: number | undefined;
}

/** Where each role's token may come from, besides `tokenizer_config.json`. */
export interface SpecialTokenSources {
  /** Explicit tokens; they win over every file. */
  specialTokens?: SpecialTokenStrings | undefined;
  /** Contents of `special_tokens_map.json`. */
  specialTokensMap?: Record<string, unknown> | undefined;
  /** Ids from `generation_config.json` / `config.json`, for roles with no token string at all. */
  fallbackTokenIds?: SpecialTokenIds | undefined;
}

const ROLES: readonly SpecialTokenRole[] = ["bos", "eos", "pad", "unk"];

const LLAMA_STYLE_CLASSES = new Set([
  "LlamaTokenizer",
  "LlamaTokenizerFast",
  "CodeLlamaTokenizer",
  "CodeLlamaTokenizerFast",
  "GemmaTokenizer",
  "GemmaTokenizerFast",
]);

/**
 * Each of bos/eos/pad/unk from `sources.specialTokens`, else the config, else
 * `special_tokens_map.json`, else the fallback id (kept only when the vocabulary has it).
 * A role with none of these is absent from the result.
 */
export function resolveSpecialTokens(
  backend: Tokenizer,
  tokenizerConfig: TokenizerConfigJson,
  sources: SpecialTokenSources,
): Map<SpecialTokenRole, SpecialToken> {
  const special = new Map<SpecialTokenRole, SpecialToken>();
  const fromConfig = specialTokenStrings(tokenizerConfig);
  const fromMap = specialTokenStrings(sources.specialTokensMap);
  for (const role of ROLES) {
    const token = sources.specialTokens?.[role] ?? fromConfig[role] ?? fromMap[role];
    if (token !== undefined) {
      special.set(role, { token, id: backend.token_to_id(token) });
      continue;
    }
    const fallback = sources.fallbackTokenIds?.[role];
    const id = Array.isArray(fallback) ? fallback[0] : fallback;
    const fallbackToken = typeof id === "number" ? backend.id_to_token(id) : undefined;
    if (typeof id === "number" && fallbackToken !== undefined) special.set(role, { token: fallbackToken, id });
  }
  return special;
}

/**
 * Work out which ids `encode(text, {addSpecialTokens: true})` puts around the text.
 * @throws ConfigError when the post-processor's output does not contain the plain encoding.
 */
export function specialTokenLayout(
  backend: Tokenizer,
  tokenizerConfig: TokenizerConfigJson,
  bosTokenId: number | undefined,
  eosTokenId: number | undefined,
  source: string | undefined,
): { prefix: number[]; suffix: number[] } {
  const cls = tokenizerConfig.tokenizer_class;
  if (typeof cls === "string" && LLAMA_STYLE_CLASSES.has(cls)) {
    // transformers' LlamaTokenizerFast rebuilds its post-processor from these flags.
    return {
      prefix: (tokenizerConfig.add_bos_token ?? true) && bosTokenId !== undefined ? [bosTokenId] : [],
      suffix: (tokenizerConfig.add_eos_token ?? false) && eosTokenId !== undefined ? [eosTokenId] : [],
    };
  }
  const probe = "a";
  const withSpecial: number[] = backend.encode(probe, { add_special_tokens: true }).ids;
  const plain: number[] = backend.encode(probe, { add_special_tokens: false }).ids;
  for (let at = 0; at + plain.length <= withSpecial.length; at++) {
    if (plain.every((id, i) => withSpecial[at + i] === id)) {
      return { prefix: withSpecial.slice(0, at), suffix: withSpecial.slice(at + plain.length) };
    }
  }
  throw new ConfigError("cannot tell which special tokens the post-processor adds", {
    file: source,
    field: "post_processor",
  });
}
