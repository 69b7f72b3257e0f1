/**
 * The `@huggingface/tokenizers` instance behind a `PreTrainedTokenizer`, built from HF's JSON
 * with the adjustments that library needs.
 * @module
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { ConfigError } from "@prefkit/core";
import { type TokenizerConfigJson, tokenContent } from "./config.js";

/** A backend tokenizer and the decoder clean-up it ended up with. */
export interface TokenizerBackend {
  /** The `@huggingface/tokenizers` instance. */
  backend: Tokenizer;
  /** Whether decoding cleans up spaces before punctuation by default. */
  cleanUpTokenizationSpaces: boolean;
}

/**
 * Build the backend from `tokenizer.json` and `tokenizer_config.json`.
 * @param cleanUpTokenizationSpaces - overrides the config's `clean_up_tokenization_spaces` when set.
 * @param source - file or folder the JSON came from, for error messages.
 * @throws ConfigError when `@huggingface/tokenizers` rejects the JSON.
 */
export function createTokenizerBackend(
  tokenizerJson: object,
  tokenizerConfig: TokenizerConfigJson,
  cleanUpTokenizationSpaces: boolean | undefined,
  source: string | undefined,
): TokenizerBackend {
  const backendConfig: Record<string, unknown> = { ...tokenizerConfig };
  if (Array.isArray(tokenizerConfig.additional_special_tokens)) {
    // The backend compares these with token strings; AddedToken objects would never match.
    backendConfig["additional_special_tokens"] = tokenizerConfig.additional_special_tokens
      .map((t) => tokenContent(t))
      .filter((t): t is string => t !== undefined);
  }
  if (cleanUpTokenizationSpaces !== undefined) {
    backendConfig["clean_up_tokenization_spaces"] = cleanUpTokenizationSpaces;
  }
  let backend: Tokenizer;
  try {
    backend = new Tokenizer(tokenizerJson, backendConfig);
  } catch (err) {
    throw new ConfigError(
      `not a tokenizer.json that @huggingface/tokenizers can load: ${(err as Error).message}`,
      {
        file: source,
      },
      { cause: err },
    );
  }
  return {
    backend,
    cleanUpTokenizationSpaces: (backendConfig["clean_up_tokenization_spaces"] as boolean | undefined) ?? true,
  };
}
