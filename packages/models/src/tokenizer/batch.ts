/**
 * Batches of texts and of token rows, as HF's `tokenizer(texts, padding=..., truncation=...)` and
 * `tokenizer.pad(...)`: the special tokens kept, the content cut, rows padded with the pad token.
 * @module
 */
import { ConfigError } from "@prefkit/core";
import {
  type BatchEncoding,
  type PaddingSide,
  padSequences,
  type TruncationSide,
  truncateSequence,
} from "./padding.js";

/** Options of {@link PreTrainedTokenizer.encodeBatch}. */
export interface EncodeBatchOptions {
  /** Add BOS/EOS as the tokenizer does for single texts. Default true. */
  addSpecialTokens?: boolean;
  /**
   * `true`/`"longest"`: pad to the longest row (the default here: a batch is meant for a tensor;
   * HF's own default is no padding). `"max_length"`: pad to `maxLength`. `false`: ragged rows.
   */
  padding?: boolean | "longest" | "max_length";
  /** Cut rows longer than `maxLength` (or `modelMaxLength`). Special tokens are kept; content is cut. */
  truncation?: boolean;
  /** Length limit for truncation and `padding: "max_length"`. */
  maxLength?: number;
  /** Overrides {@link PreTrainedTokenizer.paddingSide} for this call. */
  paddingSide?: PaddingSide;
  /** Overrides {@link PreTrainedTokenizer.truncationSide} for this call. */
  truncationSide?: TruncationSide;
  /** Round the padded length up to a multiple of this. */
  padToMultipleOf?: number;
}

/** Options of {@link PreTrainedTokenizer.pad}. */
export interface TokenizerPadOptions {
  /** Pad to exactly this length instead of the longest row. */
  maxLength?: number;
  /** Overrides {@link PreTrainedTokenizer.paddingSide} for this call. */
  paddingSide?: PaddingSide;
  /** Round the padded length up to a multiple of this. */
  padToMultipleOf?: number;
}

/** What batching reads from a tokenizer (a `PreTrainedTokenizer` has all of it). */
export interface BatchingTokenizer {
  readonly source: string | undefined;
  readonly paddingSide: PaddingSide;
  readonly truncationSide: TruncationSide;
  readonly modelMaxLength: number | undefined;
  readonly padTokenId: number | undefined;
  readonly prefixSpecialIds: readonly number[];
  readonly suffixSpecialIds: readonly number[];
  encode(text: string, options: { addSpecialTokens: false }): number[];
  pad(rows: readonly (readonly number[])[], options: TokenizerPadOptions): BatchEncoding;
}

/**
 * Encode `texts` into one batch: truncation keeps the special tokens and cuts each text's own ids
 * on the truncation side, then the rows are padded (see {@link EncodeBatchOptions}).
 * @throws ConfigError when padding is requested without a pad token, or truncation / `"max_length"`
 * padding has no length to use.
 */
export function encodeBatch(
  tokenizer: BatchingTokenizer,
  texts: readonly string[],
  options: EncodeBatchOptions = {},
): BatchEncoding {
  const addSpecial = options.addSpecialTokens ?? true;
  const padding = options.padding ?? "longest";
  const prefix = addSpecial ? tokenizer.prefixSpecialIds : [];
  const suffix = addSpecial ? tokenizer.suffixSpecialIds : [];
  let contentLimit: number | undefined;
  if (options.truncation) {
    const limit = options.maxLength ?? tokenizer.modelMaxLength;
    if (limit === undefined) {
      throw new ConfigError("truncation needs maxLength (the tokenizer has no model_max_length)", {
        file: tokenizer.source,
        field: "maxLength",
      });
    }
    contentLimit = limit - prefix.length - suffix.length;
    if (contentLimit < 0) {
      throw new ConfigError(`maxLength ${limit} leaves no room for ${prefix.length + suffix.length} special tokens`, {
        field: "maxLength",
      });
    }
  }
  const side = options.truncationSide ?? tokenizer.truncationSide;
  const rows = texts.map((text) => {
    let ids = tokenizer.encode(text, { addSpecialTokens: false });
    if (contentLimit !== undefined) ids = truncateSequence(ids, contentLimit, side);
    return [...prefix, ...ids, ...suffix];
  });
  if (padding === false) return { inputIds: rows, attentionMask: rows.map((r) => r.map(() => 1)) };
  if (padding === "max_length" && options.maxLength === undefined) {
    throw new ConfigError('padding "max_length" needs maxLength', { field: "maxLength" });
  }
  return tokenizer.pad(rows, {
    maxLength: padding === "max_length" ? options.maxLength : undefined,
    paddingSide: options.paddingSide,
    padToMultipleOf: options.padToMultipleOf,
  });
}

/**
 * Pad token rows with the tokenizer's pad token on its padding side (or the options').
 * @throws ConfigError when the tokenizer has no pad token.
 */
export function padBatch(
  tokenizer: Pick<BatchingTokenizer, "source" | "padTokenId" | "paddingSide">,
  rows: readonly (readonly number[])[],
  options: TokenizerPadOptions = {},
): BatchEncoding {
  const padTokenId = tokenizer.padTokenId;
  if (padTokenId === undefined) {
    throw new ConfigError("padding needs a pad token; call ensurePadToken() to pad with eos as TRL does", {
      file: tokenizer.source,
      field: "pad_token",
    });
  }
  return padSequences(rows, {
    padTokenId,
    paddingSide: options.paddingSide ?? tokenizer.paddingSide,
    maxLength: options.maxLength,
    padToMultipleOf: options.padToMultipleOf,
  });
}
