import type { TokenizerLike } from "../interfaces/index.js";
import { type DatasetFormat, type DatasetInput, detectFormat, preparePreferenceDataset } from "./formats.js";
import { convertHhRlhf } from "./hh-rlhf.js";
import { type LoadDatasetOptions, loadDataset } from "./load.js";
import type { BadRowPolicy, SourcedRow, TokenizedPreference } from "./types.js";
import type { DataReport } from "./report.js";
import { type TokenizeOptions, tokenizePreferenceDataset } from "./tokenize.js";

/** True when rows look like Anthropic HH-RLHF: implicit string pairs whose transcripts start with "\n\nHuman:". */
export function looksLikeHhRlhf(input: DatasetInput): boolean {
  const rows: readonly SourcedRow[] = Array.isArray(input) ? input : (input as { rows: SourcedRow[] }).rows;
  const format = detectFormat(input);
  if (format.kind !== "implicit_preference" || format.style !== "standard") return false;
  const sample = rows.slice(0, 100);
  const hits = sample.filter((r) => typeof r.data["chosen"] === "string" && r.data["chosen"].startsWith("\n\nHuman:"));
  return hits.length >= 0.9 * sample.length;
}

/** Options of {@link buildPreferenceDataset}. */
export interface BuildPreferenceDatasetOptions {
  /** Loader options (layout, limit). */
  load?: Omit<LoadDatasetOptions, "onBadRow" | "warn">;
  /** Tokenisation options (maxLength, maxPromptLength, prefix-mismatch policy, template kwargs). */
  tokenize?: Omit<TokenizeOptions, "onBadRow" | "warn">;
  /** Treat the file as HH-RLHF transcripts: `auto` (default) uses {@link looksLikeHhRlhf}. */
  hhRlhf?: boolean | "auto";
  /** Bad-row policy for every stage (default `error`; HH-RLHF conversion defaults to `skip`). */
  onBadRow?: BadRowPolicy;
  /** Receives each stage's one-line summary when it dropped rows. Default `console.warn`. */
  warn?: (message: string) => void;
}

/** The tokenised preference dataset and what each stage did. */
export interface PreferenceDatasetResult {
  /** Tokenised pairs, ready for {@link collateDpo} / {@link collateReward}. */
  examples: TokenizedPreference[];
  /** Format after normalisation (HH-RLHF becomes conversational preference). */
  format: DatasetFormat;
  /** Whether the HH-RLHF conversion was used. */
  hhRlhf: boolean;
  /** One report per stage, in order: load, format or hh-rlhf, tokenize. */
  reports: DataReport[];
}

/**
 * Load a preference file and take it all the way to token ids: {@link loadDataset}, then
 * {@link convertHhRlhf} (HH-RLHF transcripts) or {@link preparePreferenceDataset} (TRL formats), then
 * {@link tokenizePreferenceDataset}.
 * @throws DatasetError from any stage (file and row named).
 */
export async function buildPreferenceDataset(
  path: string,
  tokenizer: TokenizerLike,
  options: BuildPreferenceDatasetOptions = {},
): Promise<PreferenceDatasetResult> {
  const common: { onBadRow?: BadRowPolicy; warn?: (message: string) => void } = {};
  if (options.onBadRow !== undefined) common.onBadRow = options.onBadRow;
  if (options.warn !== undefined) common.warn = options.warn;
  const loaded = await loadDataset(path, { ...options.load, ...common });
  const hh = options.hhRlhf === undefined || options.hhRlhf === "auto" ? looksLikeHhRlhf(loaded) : options.hhRlhf;
  const prepared = hh ? convertHhRlhf(loaded, common) : preparePreferenceDataset(loaded, common);
  const tokenized = tokenizePreferenceDataset(prepared.examples, tokenizer, { ...options.tokenize, ...common });
  return {
    examples: tokenized.examples,
    format: prepared.format,
    hhRlhf: hh,
    reports: [loaded.report, prepared.report, tokenized.report],
  };
}
