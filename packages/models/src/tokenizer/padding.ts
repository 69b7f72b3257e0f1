/**
 * Padding and truncation of id sequences. `@huggingface/tokenizers` has neither, so prefkit
 * does both here, with transformers' semantics.
 * @module
 */
import { ConfigError } from "@prefkit/core";

/** Which end of a sequence gets the pad ids. Decoder-only generation wants `"left"`. */
export type PaddingSide = "left" | "right";

/** Which end of a sequence loses ids when it is too long. */
export type TruncationSide = "left" | "right";

/** A padded batch: rectangular ids and a mask with 1 for real tokens and 0 for padding. */
export interface BatchEncoding {
  /** Token ids, one row per input, all rows the same length. */
  inputIds: number[][];
  /** 1 where `inputIds` holds a real token, 0 where it holds padding. Built from lengths, never by comparing ids. */
  attentionMask: number[][];
}

/** Options of {@link padSequences}. */
export interface PadOptions {
  /** Id written into padded positions. */
  padTokenId: number;
  /** Side that gets the padding. Default `"right"`. */
  paddingSide?: PaddingSide;
  /**
   * Pad every row to exactly this length (HF `padding="max_length"`). Rows that are already longer
   * stay as they are, as in HF: truncate first if they must fit. Default: the longest row.
   */
  maxLength?: number;
  /** Round the padded length up to a multiple of this (HF `pad_to_multiple_of`). */
  padToMultipleOf?: number;
}

/**
 * Pad id sequences into a rectangular batch. The attention mask comes from each row's length,
 * so a pad id that equals eos (TRL's usual setup) never masks a real eos.
 *
 * @throws ConfigError when `maxLength` or `padToMultipleOf` is not a positive integer.
 */
export function padSequences(sequences: readonly (readonly number[])[], options: PadOptions): BatchEncoding {
  const side = options.paddingSide ?? "right";
  checkPositiveInt(options.maxLength, "maxLength");
  checkPositiveInt(options.padToMultipleOf, "padToMultipleOf");
  let target = options.maxLength ?? 0;
  for (const s of sequences) target = Math.max(target, s.length);
  const multiple = options.padToMultipleOf;
  if (multiple !== undefined && target % multiple !== 0) target += multiple - (target % multiple);
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const s of sequences) {
    const n = Math.max(0, target - s.length);
    const pads = new Array<number>(n).fill(options.padTokenId);
    const zeros = new Array<number>(n).fill(0);
    const ones = new Array<number>(s.length).fill(1);
    if (side === "left") {
      inputIds.push([...pads, ...s]);
      attentionMask.push([...zeros, ...ones]);
    } else {
      inputIds.push([...s, ...pads]);
      attentionMask.push([...ones, ...zeros]);
    }
  }
  return { inputIds, attentionMask };
}

/**
 * Cut `ids` to at most `maxLength` ids. `"right"` keeps the first ids, `"left"` keeps the last.
 * Returns a copy.
 * @throws ConfigError when `maxLength` is negative or not an integer.
 */
export function truncateSequence(ids: readonly number[], maxLength: number, side: TruncationSide = "right"): number[] {
  if (!Number.isInteger(maxLength) || maxLength < 0) {
    throw new ConfigError(`must be a non-negative integer, got ${maxLength}`, { field: "maxLength" });
  }
  if (ids.length <= maxLength) return ids.slice();
  return side === "left" ? ids.slice(ids.length - maxLength) : ids.slice(0, maxLength);
}

function checkPositiveInt(value: number | undefined, field: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
    throw new ConfigError(`must be a positive integer, got ${value}`, { field });
  }
}
