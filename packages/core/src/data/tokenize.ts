/**
 * Dataset tokenisation: preference, prompt-completion and unpaired rows to ids, in token space for
 * conversations, truncated, with a report of what was dropped.
 * @module
 */
import { DatasetError } from "../errors/index.js";
import type { TokenizerLike } from "../interfaces/index.js";
import { type BadRowOptions, type DataReport, ReportBuilder } from "./report.js";
import { Encoder, RowProblem } from "./row-encoder.js";
import type {
  CompletionExample,
  Conversation,
  PreferenceExample,
  RowSource,
  TextOrConversation,
  TokenizedCompletion,
  TokenizedPreference,
  TokenizedUnpaired,
  UnpairedExample,
} from "./types.js";
import type { TruncationOptions } from "./truncate.js";

/** Options of {@link tokenizePreferenceDataset} and {@link tokenizeCompletionDataset}. */
export interface TokenizeOptions extends BadRowOptions, TruncationOptions {
  /**
   * When the rendered prompt's tokens are not a prefix of the rendered prompt+completion's tokens (a template
   * that is not prefix-preserving, e.g. Qwen3's `<think>` handling): `error` (default) throws a
   * {@link DatasetError} naming the row; `skip` drops and counts it.
   */
  onPrefixMismatch?: "error" | "skip";
  /** Extra chat-template variables (e.g. `enable_thinking`), passed to every `applyChatTemplate` call. */
  chatTemplateKwargs?: Record<string, unknown>;
}

/** Tokenised examples and the counts of what was dropped and truncated. */
export interface TokenizedDataset<E> {
  /** Tokenised examples, in input order. */
  examples: E[];
  /** Rows in, rows out, drops by reason, truncated rows. */
  report: DataReport;
}

function isConv(v: TextOrConversation): v is Conversation {
  return Array.isArray(v);
}

function handleProblem(
  err: unknown,
  builder: ReportBuilder,
  options: TokenizeOptions,
  source: RowSource | undefined,
): void {
  if (!(err instanceof RowProblem)) throw err;
  const policy = err.mismatch ? (options.onPrefixMismatch ?? "error") : options.onBadRow;
  builder.bad(policy, source, err.reason, err.detail, err.field);
}

function tokenizeOnePreference(enc: Encoder, ex: PreferenceExample): TokenizedPreference {
  const { prompt, chosen, rejected } = ex;
  let promptIds: number[];
  let chosenIds: number[];
  let rejectedIds: number[];
  if (isConv(prompt) && isConv(chosen) && isConv(rejected)) {
    promptIds = enc.conversationalPrompt(prompt, chosen).ids;
    chosenIds = enc.conversationalCompletion(prompt, promptIds, chosen, "chosen");
    rejectedIds = enc.conversationalCompletion(prompt, promptIds, rejected, "rejected");
  } else if (typeof prompt === "string" && typeof chosen === "string" && typeof rejected === "string") {
    promptIds = enc.standardPrompt(prompt);
    chosenIds = enc.standardCompletion(chosen);
    rejectedIds = enc.standardCompletion(rejected);
  } else {
    throw new RowProblem("mixed styles", "prompt, chosen and rejected mix strings and message lists");
  }
  if (chosenIds.length === 0) throw new RowProblem("empty completion", "chosen tokenises to nothing", "chosen");
  if (rejectedIds.length === 0) throw new RowProblem("empty completion", "rejected tokenises to nothing", "rejected");
  return { promptIds, chosenIds, rejectedIds };
}

/**
 * Tokenise preference examples for DPO / reward modelling.
 *
 * Conversational rows: the prompt is rendered with the tokenizer's chat template (`addGenerationPrompt` when
 * it does not end on an assistant turn and the completion starts with one), prompt+chosen and prompt+rejected
 * are rendered whole, all three are tokenised, the prompt ids must be a prefix of both full sequences
 * (`onPrefixMismatch`), and the completions are the remainders. Standard rows: prompt ids with special
 * tokens, completion ids without, plus eos. Special tokens are never doubled: the post-processor's prefix
 * (e.g. BOS) is only added when the text does not already start with it.
 *
 * Then `maxPromptLength` (keep the end), `maxCompletionLength` and `maxLength` (default 1024) apply. With
 * `truncationMode` `keep_start` (default) completions keep their start and rows whose prompt alone reaches
 * `maxLength` are dropped and counted; with `keep_end` each sequence keeps its last `maxLength` tokens and the
 * rejected sequence's prompt goes to `rejectedPromptIds` when it differs from the chosen one's.
 * @throws DatasetError naming file and row for a bad row (unless `onBadRow: "skip"`) or a prefix mismatch
 * (unless `onPrefixMismatch: "skip"`), and when every row is dropped.
 */
export function tokenizePreferenceDataset(
  examples: readonly PreferenceExample[],
  tokenizer: TokenizerLike,
  options: TokenizeOptions = {},
): TokenizedDataset<TokenizedPreference> {
  return tokenizeEach(
    examples,
    tokenizer,
    options,
    (enc, ex) => {
      const t = tokenizeOnePreference(enc, ex);
      return { promptIds: t.promptIds, completions: [t.chosenIds, t.rejectedIds] };
    },
    (ex, [promptIds, rejectedPromptIds], [chosenIds, rejectedIds]) => {
      const row: TokenizedPreference = { promptIds: promptIds!, chosenIds: chosenIds!, rejectedIds: rejectedIds! };
      if (rejectedPromptIds!.length !== promptIds!.length) row.rejectedPromptIds = rejectedPromptIds!;
      if (ex.margin !== undefined) row.margin = ex.margin;
      return row;
    },
  );
}

/**
 * Tokenise SFT examples (prompt-completion, or language-modelling rows with an empty prompt) the same way as
 * {@link tokenizePreferenceDataset}: token-space split for conversations, eos appended to standard completions,
 * the same truncation and drop rules.
 * @throws DatasetError as {@link tokenizePreferenceDataset}.
 */
export function tokenizeCompletionDataset(
  examples: readonly CompletionExample[],
  tokenizer: TokenizerLike,
  options: TokenizeOptions = {},
): TokenizedDataset<TokenizedCompletion> {
  return tokenizeEach(
    examples,
    tokenizer,
    options,
    (enc, ex) => tokenizeOneCompletion(enc, ex, true),
    (_ex, [promptIds], [completionIds]): TokenizedCompletion => ({
      promptIds: promptIds!,
      completionIds: completionIds!,
    }),
  );
}

/**
 * Tokenise unpaired examples for KTO the way {@link tokenizeCompletionDataset} tokenises a prompt and its
 * completion (token-space split for conversations, eos appended to standard completions, the same truncation
 * and drop rules), keeping each row's label. An empty prompt stays a prompt: the special prefix (e.g. BOS)
 * goes to the prompt side, as TRL's KTO adds BOS to the prompt, so the completion holds only its own tokens.
 * @throws DatasetError as {@link tokenizePreferenceDataset}.
 */
export function tokenizeUnpairedDataset(
  examples: readonly UnpairedExample[],
  tokenizer: TokenizerLike,
  options: TokenizeOptions = {},
): TokenizedDataset<TokenizedUnpaired> {
  return tokenizeEach(
    examples,
    tokenizer,
    options,
    (enc, ex) => tokenizeOneCompletion(enc, ex, false),
    (ex, [promptIds], [completionIds]): TokenizedUnpaired => ({
      promptIds: promptIds!,
      completionIds: completionIds!,
      label: ex.label,
    }),
  );
}

/**
 * One prompt and completion to ids. With `emptyPromptIsText` (SFT), an empty prompt means a language-modelling
 * row: the whole text is the completion, special prefix included. Otherwise an empty prompt is encoded as one.
 */
function tokenizeOneCompletion(
  enc: Encoder,
  ex: CompletionExample,
  emptyPromptIsText: boolean,
): { promptIds: number[]; completions: number[][] } {
  const { prompt, completion } = ex;
  let promptIds: number[];
  let completionIds: number[];
  if (isConv(prompt) && isConv(completion)) {
    if (emptyPromptIsText && prompt.length === 0) {
      promptIds = [];
      completionIds = enc.encodeUpTo(enc.render(completion, false, "completion"), enc.completionLimit);
    } else {
      promptIds = enc.conversationalPrompt(prompt, completion).ids;
      completionIds = enc.conversationalCompletion(prompt, promptIds, completion, "completion");
    }
  } else if (typeof prompt === "string" && typeof completion === "string") {
    if (emptyPromptIsText && prompt === "") {
      promptIds = [];
      completionIds = [...enc.encodeUpTo(completion, enc.completionLimit), enc.eos()];
    } else {
      promptIds = enc.standardPrompt(prompt);
      completionIds = enc.standardCompletion(completion);
    }
  } else {
    throw new RowProblem("mixed styles", "prompt and completion mix strings and message lists");
  }
  if (completionIds.length === 0) {
    throw new RowProblem("empty completion", "completion tokenises to nothing", "completion");
  }
  return { promptIds, completions: [completionIds] };
}

/**
 * The loop every tokenise function shares: count the row, tokenise it (a {@link RowProblem} follows the
 * bad-row or prefix-mismatch policy), truncate, build the output row with its provenance, and finish the report.
 */
function tokenizeEach<E extends { source?: RowSource }, T extends { source?: RowSource }>(
  examples: readonly E[],
  tokenizer: TokenizerLike,
  options: TokenizeOptions,
  tokenizeOne: (enc: Encoder, ex: E) => { promptIds: number[]; completions: number[][] },
  build: (ex: E, prompts: number[][], completions: number[][]) => T,
): TokenizedDataset<T> {
  const enc = new Encoder(tokenizer, options);
  const builder = new ReportBuilder("tokenize");
  const out: T[] = [];
  for (const ex of examples) {
    builder.report.rowsIn++;
    let t: { promptIds: number[]; completions: number[][] };
    try {
      t = tokenizeOne(enc, ex);
    } catch (err) {
      handleProblem(err, builder, options, ex.source);
      continue;
    }
    const cut = enc.truncate(t.promptIds, t.completions, builder, ex.source);
    if (cut === undefined) continue;
    const row = build(ex, cut.prompts, cut.completions);
    if (ex.source !== undefined) row.source = ex.source;
    out.push(row);
  }
  const report = builder.finishRows(out.length, options.warn, examples[0]?.source?.file, (r) =>
    r.rowsIn === 0 ? "dataset is empty (no rows)" : `no row survived tokenisation (${r.rowsIn} in)`,
  );
  return { examples: out, report };
}
