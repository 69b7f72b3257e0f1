/**
 * Turning what a user hands a trainer (token ids, raw TRL rows, or a file path) into tokenised
 * examples, through core's data pipeline.
 * @module
 */
import {
  ConfigError,
  convertHhRlhf,
  DatasetError,
  type DataReport,
  loadDataset,
  looksLikeHhRlhf,
  prepareCompletionDataset,
  preparePreferenceDataset,
  prepareUnpairedDataset,
  rowsFromObjects,
  type SourcedRow,
  type TokenizedCompletion,
  type TokenizedPreference,
  type TokenizedUnpaired,
  type TokenizeOptions,
  type TokenizerLike,
  tokenizeCompletionDataset,
  tokenizePreferenceDataset,
  tokenizeUnpairedDataset,
} from "@prefkit/core";

/**
 * A preference dataset as the `DPOTrainer` accepts it:
 * - tokenised pairs (`{ promptIds, chosenIds, rejectedIds }`, e.g. `buildPreferenceDataset(...).examples`),
 *   used as given (no further truncation: `maxLength` applies when the pipeline tokenises);
 * - raw TRL rows (`{ prompt, chosen, rejected }` or implicit `{ chosen, rejected }`, strings or message
 *   lists, HH-RLHF transcripts detected), tokenised with the trainer's `processingClass`;
 * - a JSON / JSONL(.gz) file path, loaded and tokenised the same way.
 */
export type PreferenceDatasetInput = readonly TokenizedPreference[] | readonly Record<string, unknown>[] | string;

/**
 * An SFT dataset as the `SFTTrainer` accepts it: tokenised examples (`{ promptIds, completionIds }`, used
 * as given),
 * raw TRL rows (`{ text }`, `{ messages }`, `{ prompt, completion }`), or a JSON / JSONL(.gz) file path.
 */
export type CompletionDatasetInput = readonly TokenizedCompletion[] | readonly Record<string, unknown>[] | string;

/** Tokenised rows plus the pipeline's reports (empty when the rows came tokenised). */
export interface ResolvedDataset<E> {
  /** Tokenised examples, in order. */
  examples: E[];
  /** One report per pipeline stage that ran. */
  reports: DataReport[];
  /** True when the input rows were raw and went through the pipeline. */
  tokenized: boolean;
}

const isIdList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x));

/** Throws a {@link DatasetError} for a row whose `fields` (or `optionalFields`, when present) are not id lists. */
function checkIds(
  rows: readonly Record<string, unknown>[],
  fields: string[],
  what: string,
  optionalFields: string[] = [],
): void {
  rows.forEach((r, i) => {
    for (const f of [...fields, ...optionalFields.filter((o) => r[o] !== undefined)]) {
      if (!isIdList(r[f])) {
        throw new DatasetError(`${what}: "${f}" must be a list of integer token ids`, { row: i + 1, field: f });
      }
    }
  });
}

async function sourcedRows(
  input: readonly Record<string, unknown>[] | string,
  field: string,
  warn: ((message: string) => void) | undefined,
): Promise<SourcedRow[]> {
  if (typeof input === "string") return (await loadDataset(input, warn ? { warn } : {})).rows;
  if (input.length === 0) throw new DatasetError("dataset is empty (no rows)", { field });
  return rowsFromObjects(input);
}

function needTokenizer(tokenizer: TokenizerLike | undefined, field: string): TokenizerLike {
  if (tokenizer === undefined) {
    throw new ConfigError("raw text rows or a file path need a tokenizer: pass processingClass (or tokenizer)", {
      field,
    });
  }
  return tokenizer;
}

/**
 * Resolve a {@link PreferenceDatasetInput} to tokenised pairs. Tokenised rows are validated and kept;
 * anything else goes through `loadDataset` → `convertHhRlhf` / `preparePreferenceDataset` →
 * `tokenizePreferenceDataset` with `tokenize` (maxLength, maxPromptLength, ...).
 * @param warn where the load and format stages report (invalid UTF-8, identical pairs dropped, …);
 *   default `tokenize.warn`.
 * @throws DatasetError for an empty dataset or a malformed row (naming it); ConfigError when raw rows
 *   come without a tokenizer.
 */
export async function resolvePreferenceDataset(
  input: PreferenceDatasetInput,
  tokenizer: TokenizerLike | undefined,
  tokenize: TokenizeOptions,
  field = "trainDataset",
  warn: ((message: string) => void) | undefined = tokenize.warn,
): Promise<ResolvedDataset<TokenizedPreference>> {
  if (typeof input !== "string" && !Array.isArray(input)) {
    throw new ConfigError("expected an array of rows or a file path", { field });
  }
  if (typeof input !== "string" && input.length > 0 && "chosenIds" in (input[0] as object)) {
    const rows = input as readonly TokenizedPreference[];
    checkIds(rows as unknown as Record<string, unknown>[], ["promptIds", "chosenIds", "rejectedIds"], field, [
      "rejectedPromptIds",
    ]);
    rows.forEach((r, i) => {
      if (r.chosenIds.length === 0 || r.rejectedIds.length === 0) {
        throw new DatasetError(`${field}: empty completion`, {
          row: i + 1,
          field: r.chosenIds.length ? "rejectedIds" : "chosenIds",
        });
      }
    });
    return { examples: [...rows], reports: [], tokenized: false };
  }
  const tok = needTokenizer(tokenizer, field);
  const rows = await sourcedRows(input as readonly Record<string, unknown>[] | string, field, warn);
  const to = warn ? { warn } : {};
  const prepared = looksLikeHhRlhf(rows)
    ? convertHhRlhf(rows, { onBadRow: "skip", ...to })
    : preparePreferenceDataset(rows, to);
  const tokenized = tokenizePreferenceDataset(prepared.examples, tok, tokenize);
  return { examples: tokenized.examples, reports: [prepared.report, tokenized.report], tokenized: true };
}

/**
 * Resolve a {@link CompletionDatasetInput} to tokenised prompt-completion examples (language-modelling rows
 * get an empty prompt). Returns also whether the data was prompt-completion, which decides TRL's default of
 * `completionOnlyLoss`.
 */
export async function resolveCompletionDataset(
  input: CompletionDatasetInput,
  tokenizer: TokenizerLike | undefined,
  tokenize: TokenizeOptions,
  field = "trainDataset",
): Promise<ResolvedDataset<TokenizedCompletion> & { promptCompletion: boolean }> {
  if (typeof input !== "string" && !Array.isArray(input)) {
    throw new ConfigError("expected an array of rows or a file path", { field });
  }
  if (typeof input !== "string" && input.length > 0 && "completionIds" in (input[0] as object)) {
    const rows = input as readonly TokenizedCompletion[];
    checkIds(rows as unknown as Record<string, unknown>[], ["promptIds", "completionIds"], field);
    return {
      examples: [...rows],
      reports: [],
      tokenized: false,
      promptCompletion: rows.some((r) => r.promptIds.length > 0),
    };
  }
  const tok = needTokenizer(tokenizer, field);
  const rows = await sourcedRows(input as readonly Record<string, unknown>[] | string, field, tokenize.warn);
  const prepared = prepareCompletionDataset(rows, tokenize.warn ? { warn: tokenize.warn } : {});
  const tokenized = tokenizeCompletionDataset(prepared.examples, tok, tokenize);
  return {
    examples: tokenized.examples,
    reports: [prepared.report, tokenized.report],
    tokenized: true,
    promptCompletion: prepared.format.kind === "prompt_completion",
  };
}

/**
 * A KTO dataset as the `KTOTrainer` accepts it: tokenised unpaired rows (`{ promptIds, completionIds, label }`,
 * used as given), raw rows (unpaired `{ prompt, completion, label }`, or preference pairs, which are unpaired
 * as TRL's `maybe_unpair_preference_dataset`), or a JSON / JSONL(.gz) file path.
 */
export type UnpairedDatasetInput = readonly TokenizedUnpaired[] | readonly Record<string, unknown>[] | string;

/**
 * Resolve an {@link UnpairedDatasetInput} to tokenised unpaired rows. Tokenised rows are validated and kept;
 * anything else goes through `loadDataset` → `prepareUnpairedDataset` → `tokenizeUnpairedDataset`.
 * @throws DatasetError for an empty dataset or a malformed row (naming it); ConfigError when raw rows come
 *   without a tokenizer.
 */
export async function resolveUnpairedDataset(
  input: UnpairedDatasetInput,
  tokenizer: TokenizerLike | undefined,
  tokenize: TokenizeOptions,
  field = "trainDataset",
): Promise<ResolvedDataset<TokenizedUnpaired>> {
  if (typeof input !== "string" && !Array.isArray(input)) {
    throw new ConfigError("expected an array of rows or a file path", { field });
  }
  if (typeof input !== "string" && input.length > 0 && "completionIds" in (input[0] as object)) {
    const rows = input as readonly TokenizedUnpaired[];
    checkIds(rows as unknown as Record<string, unknown>[], ["promptIds", "completionIds"], field);
    rows.forEach((r, i) => {
      if (typeof r.label !== "boolean") {
        throw new DatasetError(`${field}: "label" must be true or false`, { row: i + 1, field: "label" });
      }
    });
    return { examples: [...rows], reports: [], tokenized: false };
  }
  const tok = needTokenizer(tokenizer, field);
  const rows = await sourcedRows(input as readonly Record<string, unknown>[] | string, field, tokenize.warn);
  const prepared = prepareUnpairedDataset(rows, tokenize.warn ? { warn: tokenize.warn } : {});
  const tokenized = tokenizeUnpairedDataset(prepared.examples, tok, tokenize);
  return { examples: tokenized.examples, reports: [prepared.report, tokenized.report], tokenized: true };
}
