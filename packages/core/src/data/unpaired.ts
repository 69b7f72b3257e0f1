/**
 * Unpaired preference data (KTO): rows `{prompt, completion, label}` in either TRL style, and the conversion of
 * paired preference data to unpaired rows as TRL's `unpair_preference_dataset`.
 * @module
 */
import { ConfigError, DatasetError } from "../errors/index.js";
import {
  checkFields,
  type DatasetFormat,
  type DatasetInput,
  detectFormat,
  fileOf,
  finishPrepared,
  isEmptyText,
  type PreparedDataset,
  type PrepareOptions,
  preparePreferenceDataset,
  rowsOf,
  typeName,
  withSource,
} from "./formats.js";
import { ReportBuilder } from "./report.js";
import type { PreferenceExample, SourcedRow, TextOrConversation, UnpairedExample } from "./types.js";

/** TRL's `datasets.map(batched=True)` batch size, the block in which {@link unpairPreferences} groups rows. */
export const UNPAIR_BATCH_SIZE = 1000;

/** Options of {@link prepareUnpairedDataset} and {@link unpairPreferenceDataset}. */
export interface PrepareUnpairedOptions extends PrepareOptions {
  /** Rows per block when unpairing pairs (default {@link UNPAIR_BATCH_SIZE}, as TRL). */
  unpairBatchSize?: number;
}

/** Unpaired examples, the format the rows were read as, and whether they came from pairs. */
export interface PreparedUnpairedDataset extends PreparedDataset<UnpairedExample> {
  /** True when the rows were preference pairs, unpaired into one desirable and one undesirable row each. */
  fromPairs: boolean;
}

/** Rows sampled to tell unpaired data from plain prompt-completion data, as {@link detectFormat} samples. */
const DETECTION_SAMPLE = 100;

/**
 * True when a dataset holds unpaired preference rows: prompt-completion rows (either style) that carry a
 * `label` column (TRL's "unpaired preference" type). Plain prompt-completion data (SFT) is not.
 */
export function isUnpairedPreferenceDataset(input: DatasetInput): boolean {
  if (detectFormat(input).kind !== "prompt_completion") return false;
  const sample = rowsOf(input).slice(0, DETECTION_SAMPLE);
  return sample.filter((r) => r.data["label"] !== undefined).length * 2 > sample.length;
}

/** The label of a row: a boolean, or 1/0 (a numeric label column); undefined when it is neither. */
function labelOf(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === 1 || value === 0) return value === 1;
  return undefined;
}

function unpairedRow(
  row: SourcedRow,
  format: DatasetFormat,
  builder: ReportBuilder,
  options: PrepareOptions,
): UnpairedExample | undefined {
  if (!checkFields(row, ["prompt", "completion"], format.style, builder, options)) return undefined;
  const raw = row.data["label"];
  const label = labelOf(raw);
  if (label === undefined) {
    const detail =
      raw === undefined || raw === null ? "missing field" : `expected true or false (or 1/0), got ${typeName(raw)}`;
    builder.bad(
      options.onBadRow,
      row.source,
      raw === undefined || raw === null ? "missing field" : "wrong type",
      detail,
      "label",
    );
    return undefined;
  }
  const d = row.data as Record<string, TextOrConversation>;
  if (isEmptyText(d["completion"]!)) {
    builder.bad(options.onBadRow, row.source, "empty completion", "empty completion", "completion");
    return undefined;
  }
  return withSource({ prompt: d["prompt"]!, completion: d["completion"]!, label }, row.source);
}

/**
 * Each preference pair → a desirable row (its chosen completion, `label: true`) and an undesirable row (its
 * rejected completion, `label: false`), as TRL's `unpair_preference_dataset`. TRL maps in batches of 1000, so
 * within each block of `batchSize` pairs all the chosen rows come first, then all the rejected rows in the
 * same order. This keeps a pair's two completions apart: KTO's KL estimate pairs each prompt with the previous
 * row's completion, which must come from another prompt. Both rows keep the pair's provenance.
 *
 * @param examples normalised pairs (see `preparePreferenceDataset`)
 * @param batchSize pairs per block (default {@link UNPAIR_BATCH_SIZE})
 */
export function unpairPreferences(
  examples: readonly PreferenceExample[],
  batchSize: number = UNPAIR_BATCH_SIZE,
): UnpairedExample[] {
  const out: UnpairedExample[] = [];
  const withProvenance = (ex: PreferenceExample, completion: TextOrConversation, label: boolean) => {
    const row: UnpairedExample = { prompt: ex.prompt, completion, label };
    if (ex.source !== undefined) row.source = ex.source;
    return row;
  };
  for (let start = 0; start < examples.length; start += batchSize) {
    const block = examples.slice(start, start + batchSize);
    for (const ex of block) out.push(withProvenance(ex, ex.chosen, true));
    for (const ex of block) out.push(withProvenance(ex, ex.rejected, false));
  }
  return out;
}

/**
 * Normalise a preference dataset (explicit or implicit prompt, either style; implicit prompts are extracted
 * first, as TRL's KTO runs `maybe_extract_prompt` before unpairing) and unpair it with {@link unpairPreferences}.
 * Malformed pairs throw a {@link DatasetError} naming file, row and field, or are dropped with `onBadRow: "skip"`.
 * @throws DatasetError for an empty or non-preference dataset, or (by default) a malformed row.
 */
export function unpairPreferenceDataset(
  input: DatasetInput,
  options: PrepareUnpairedOptions = {},
): PreparedUnpairedDataset {
  const prepared = preparePreferenceDataset(input, options);
  return { ...prepared, examples: unpairPreferences(prepared.examples, options.unpairBatchSize), fromPairs: true };
}

/**
 * Normalise a dataset for KTO to {@link UnpairedExample}s: unpaired rows `{prompt, completion, label}` (standard
 * or conversational; `label` true/false, or 1/0) as they are, and preference pairs through
 * {@link unpairPreferenceDataset} (TRL's `maybe_unpair_preference_dataset`). Malformed rows (missing field, wrong
 * type, a label that is not a boolean, an empty completion) throw a {@link DatasetError} naming file, row and
 * field, or are dropped and counted with `onBadRow: "skip"`.
 * @throws DatasetError for an empty dataset, a dataset that is neither unpaired nor paired preference data, or
 * (by default) a malformed row.
 */
export function prepareUnpairedDataset(
  input: DatasetInput,
  options: PrepareUnpairedOptions = {},
): PreparedUnpairedDataset {
  const format = options.format ?? detectFormat(input);
  if (format.kind === "preference" || format.kind === "implicit_preference") {
    return unpairPreferenceDataset(input, { ...options, format });
  }
  const file = fileOf(input);
  if (format.kind !== "prompt_completion" || (options.format === undefined && !isUnpairedPreferenceDataset(input))) {
    throw new DatasetError(
      "expected unpaired preference rows ({prompt, completion, label}) or preference pairs " +
        `({prompt, chosen, rejected} or {chosen, rejected}), found ${format.kind === "prompt_completion" ? "prompt_completion without a label column" : format.kind}`,
      file === undefined ? {} : { file },
    );
  }
  const builder = new ReportBuilder("format");
  const examples: UnpairedExample[] = [];
  for (const row of rowsOf(input)) {
    builder.report.rowsIn++;
    const example = unpairedRow(row, format, builder, options);
    if (example !== undefined) examples.push(example);
  }
  return { ...finishPrepared(examples, format, builder, options, file), fromPairs: false };
}

/**
 * The completions KTO's KL estimate pairs with each row, as TRL's `_get_kl_dataset`: within consecutive blocks of
 * `batchSize` rows (TRL: `per_device_train_batch_size`, over the dataset order), row i takes the completion of
 * row i − 1 and the first row the block's last, so each prompt meets another row's completion. A block of one
 * row pairs it with itself, which is why TRL requires a batch size above 1.
 *
 * @param completions one completion (text or token ids) per row, in dataset order
 * @param batchSize the block size
 * @returns the mismatched completion for each row
 */
export function klMismatchedCompletions<T>(completions: readonly T[], batchSize: number): T[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ConfigError(`must be an integer >= 1, got ${batchSize}`, { field: "batchSize" });
  }
  const out: T[] = [];
  for (let start = 0; start < completions.length; start += batchSize) {
    const block = completions.slice(start, start + batchSize);
    out.push(block.at(-1)!, ...block.slice(0, -1));
  }
  return out;
}
