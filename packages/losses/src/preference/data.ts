/**
 * Preference data of a run: raw or tokenised pairs (or a file), loaded and tokenised when training starts.
 * @module
 */
import type { TokenizedPreference, TokenizeOptions, TokenizerLike } from "@prefkit/core";
import { type PreferenceDatasetInput, resolvePreferenceDataset } from "../common/datasets.js";
import { type LazyBatchSource, trainAndEvalSources } from "../common/lazy-source.js";
import type { Split } from "./ref-cache.js";
import { collatePreferences, type PreferenceBatch } from "./task.js";

/** A run's preference sources: shuffled training pairs and, if given, evaluation pairs in order. */
export interface PreferenceSources {
  /** Training pairs. */
  train: LazyBatchSource<TokenizedPreference, PreferenceBatch>;
  /** Evaluation pairs. */
  eval?: LazyBatchSource<TokenizedPreference, PreferenceBatch>;
}

/** What {@link preferenceSources} needs. */
export interface PreferenceSourceOptions {
  /** Rows per micro-batch and the shuffle seed. */
  args: { perDeviceTrainBatchSize: number; seed: number };
  /** Training pairs: tokenised, raw TRL rows, or a file path. */
  trainDataset: PreferenceDatasetInput;
  /** Evaluation pairs, same forms. */
  evalDataset?: PreferenceDatasetInput | undefined;
  /** Tokenises raw rows. */
  tokenizer: TokenizerLike | undefined;
  /** Truncation and warnings of the tokenisation. */
  tokenize: TokenizeOptions;
  /** Pad id of the batches. */
  padTokenId: number;
}

/** The sources of a preference run (see {@link PreferenceSources}). */
export function preferenceSources(o: PreferenceSourceOptions): PreferenceSources {
  const load = (input: PreferenceDatasetInput, field: string) => async () =>
    (await resolvePreferenceDataset(input, o.tokenizer, o.tokenize, field)).examples;
  return trainAndEvalSources(
    o.args,
    {
      train: load(o.trainDataset, "trainDataset"),
      eval: o.evalDataset !== undefined ? load(o.evalDataset, "evalDataset") : undefined,
    },
    (split) => collatePreferences(o.padTokenId, split),
  );
}

/** The rows of `split` once its source has loaded them, else undefined. */
export function loadedRows(sources: PreferenceSources, split: Split): TokenizedPreference[] | undefined {
  const source = split === "train" ? sources.train : sources.eval;
  return source?.ready ? source.rows : undefined;
}
