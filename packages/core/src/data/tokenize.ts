import { ConfigError, DatasetError } from "../errors/index.js";
import type { TokenizerLike } from "../interfaces/index.js";
import { type BadRowOptions, type DataReport, ReportBuilder } from "./report.js";
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
import { DEFAULT_MAX_LENGTH, type TruncatedRow, type TruncationOptions, truncateRow } from "./truncate.js";

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

/** The ids the tokenizer's post-processor puts before the text (e.g. `[bos]`); found by probing once. */
export function specialPrefixIds(tokenizer: TokenizerLike): number[] {
  const probe = "a";
  const withSpecial = tokenizer.encode(probe, { addSpecialTokens: true });
  const plain = tokenizer.encode(probe, { addSpecialTokens: false });
  for (let k = 0; k + plain.length <= withSpecial.length; k++) {
    if (plain.every((id, j) => withSpecial[k + j] === id)) return withSpecial.slice(0, k);
  }
  return [];
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > ids.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}

/** Texts up to this many characters per needed token (plus {@link LONG_TEXT_SLACK}) are encoded whole. */
const CHARS_PER_TOKEN_BOUND = 32;
/** Characters always encoded whole, whatever the limit. */
const LONG_TEXT_SLACK = 4096;
/** A probe must give this many tokens beyond the limit, so that the cut cannot reach the tokens kept. */
const PROBE_MARGIN = 8;

/** Where to cut `text` near `at` without splitting a word (or a surrogate pair) when it can be helped. */
function cutPoint(text: string, at: number, side: "head" | "tail"): number {
  const space = side === "head" ? text.lastIndexOf(" ", at) : text.indexOf(" ", at);
  // head: cut before a space; tail: start right after one (both are word boundaries for every tokenizer)
  const near = side === "head" ? space > at / 2 : space >= 0 && space < at + (text.length - at) / 2;
  let cut = near ? (side === "head" ? space : space + 1) : at;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return cut;
}

function sameRange(a: readonly number[], b: readonly number[], n: number, fromEnd: boolean): boolean {
  if (a.length < n || b.length < n) return false;
  for (let i = 0; i < n; i++) {
    if ((fromEnd ? a[a.length - 1 - i] : a[i]) !== (fromEnd ? b[b.length - 1 - i] : b[i])) return false;
  }
  return true;
}

/**
 * The tokens of a long `text` that a limit of `limit` tokens can keep, without tokenising all of it: the
 * first `limit + 1` (`side: "head"`) or the last `limit + 1` (`"tail"`) tokens of `encode(text)`, or all of
 * them when there are no more. One more than the limit is returned so the caller still sees that the text
 * was longer and truncates (and counts) it as usual.
 *
 * Texts shorter than 32 characters per kept token (plus 4096) are encoded whole. Longer ones are
 * encoded from a piece cut at a word boundary, growing 4× until the piece yields more than `limit` tokens
 * and a piece twice as long agrees on the tokens kept (so a merge across the cut cannot change them);
 * otherwise the whole text is encoded. A 10 MB row cut to 1024 tokens costs a few thousand characters of
 * tokenisation instead of ten million.
 */
export function encodeLimited(
  text: string,
  limit: number | null | undefined,
  side: "head" | "tail",
  encode: (text: string) => number[],
): number[] {
  if (limit == null || text.length <= CHARS_PER_TOKEN_BOUND * (limit + 1) + LONG_TEXT_SLACK) return encode(text);
  const keep = limit + 1;
  const piece = (chars: number) =>
    side === "head"
      ? text.slice(0, cutPoint(text, chars, "head"))
      : text.slice(cutPoint(text, text.length - chars, "tail"));
  for (let chars = Math.max(LONG_TEXT_SLACK, 8 * keep); 2 * chars < text.length; chars *= 4) {
    const ids = encode(piece(chars));
    if (ids.length < keep + PROBE_MARGIN) continue;
    if (sameRange(ids, encode(piece(2 * chars)), keep, side === "tail")) {
      return side === "head" ? ids.slice(0, keep) : ids.slice(ids.length - keep);
    }
  }
  return encode(text);
}

/** A row-level problem: a reason key for the report and a message for the error. */
class RowProblem {
  constructor(
    readonly reason: string,
    readonly detail: string,
    readonly field?: string,
    readonly mismatch = false,
  ) {}
}

/** Shared tokenisation state: the tokenizer, its special prefix, and the resolved options. */
class Encoder {
  readonly prefix: number[];
  /** The most tokens of a completion that can survive truncation (`maxLength`, `maxCompletionLength`). */
  readonly completionLimit: number | undefined;
  /** The most tokens of a prompt that matter: the end kept by `maxPromptLength`, or the drop test at `maxLength`. */
  readonly promptLimit: { side: "head" | "tail"; limit: number } | undefined;
  constructor(
    readonly tokenizer: TokenizerLike,
    readonly options: TokenizeOptions,
  ) {
    this.prefix = specialPrefixIds(tokenizer);
    // keep_end keeps a row's last tokens, so its text cannot be cut from the start before tokenising
    const maxLength =
      options.truncationMode === "keep_end"
        ? null
        : options.maxLength === undefined
          ? DEFAULT_MAX_LENGTH
          : options.maxLength;
    const limits = [maxLength, options.maxCompletionLength].filter((x): x is number => x != null);
    this.completionLimit = limits.length > 0 ? Math.min(...limits) : undefined;
    this.promptLimit =
      options.maxPromptLength != null
        ? { side: "tail", limit: options.maxPromptLength }
        : maxLength != null
          ? { side: "head", limit: maxLength }
          : undefined;
  }

  /** {@link encode}, of only the part of a long text the limits can keep (see {@link encodeLimited}). */
  encodeUpTo(text: string, limit: number | undefined, side: "head" | "tail" = "head"): number[] {
    return encodeLimited(text, limit, side, (t) => this.encode(t));
  }

  /** Encode without special tokens, then add the post-processor's prefix unless the text already starts with it (no doubled BOS). */
  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    return this.prefix.length === 0 || startsWith(ids, this.prefix) ? ids : [...this.prefix, ...ids];
  }

  eos(): number {
    const eos = this.tokenizer.eosTokenId;
    if (eos === undefined) {
      throw new ConfigError("the tokenizer has no eos token; standard-format completions need one appended");
    }
    return eos;
  }

  render(messages: Conversation, addGenerationPrompt: boolean, field: string): string {
    try {
      return this.tokenizer.applyChatTemplate(messages, { ...this.options.chatTemplateKwargs, addGenerationPrompt });
    } catch (err) {
      throw new RowProblem(
        "chat template failed",
        `chat template failed: ${err instanceof Error ? err.message : String(err)}`,
        field,
      );
    }
  }

  /** Standard style: prompt with special tokens, completion without, plus eos (as TRL for non-conversational). */
  standardPrompt(prompt: string): number[] {
    return this.encodeUpTo(prompt, this.promptLimit?.limit, this.promptLimit?.side);
  }
  standardCompletion(completion: string): number[] {
    const encode = (t: string) => this.tokenizer.encode(t, { addSpecialTokens: false });
    return [...encodeLimited(completion, this.completionLimit, "head", encode), this.eos()];
  }

  /** Conversational style: render prompt and prompt+completion, split in token space, check the prefix property. */
  conversationalPrompt(prompt: Conversation, completion: Conversation): { text: string; ids: number[] } {
    if (!this.tokenizer.hasChatTemplate) {
      throw new ConfigError("conversational data needs a tokenizer with a chat template");
    }
    const endsOnAssistant = prompt.at(-1)?.role === "assistant";
    const addGen = !endsOnAssistant && completion[0]?.role === "assistant";
    const text = this.render(prompt, addGen, "prompt");
    // the prompt's ids must be a prefix of the full render's, so only its head may be cut short
    const head = this.promptLimit?.side === "head" ? this.promptLimit.limit : undefined;
    return { text, ids: this.encodeUpTo(text, head) };
  }
  conversationalCompletion(prompt: Conversation, promptIds: number[], completion: Conversation, field: string) {
    const limit = this.completionLimit === undefined ? undefined : promptIds.length + this.completionLimit;
    const full = this.encodeUpTo(this.render([...prompt, ...completion], false, field), limit);
    if (!startsWith(full, promptIds)) {
      throw new RowProblem(
        "prompt not a token prefix",
        `the rendered prompt's ${promptIds.length} tokens are not a prefix of the rendered prompt+${field} tokens ` +
          "(chat template not prefix-preserving?)",
        field,
        true,
      );
    }
    return full.slice(promptIds.length);
  }

  /** {@link truncateRow} with the report: a dropped row is counted and gives undefined. */
  truncate(
    promptIds: number[],
    completions: number[][],
    builder: ReportBuilder,
    source: RowSource | undefined,
  ): TruncatedRow | undefined {
    const cut = truncateRow(promptIds, completions, this.options);
    if ("dropReason" in cut) {
      builder.drop(source, cut.dropReason);
      return undefined;
    }
    if (cut.truncated) builder.report.truncated++;
    return cut;
  }
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
  return finish(out, builder, options, examples[0]?.source);
}

function finish<E>(
  out: E[],
  builder: ReportBuilder,
  options: BadRowOptions,
  first: RowSource | undefined,
): TokenizedDataset<E> {
  builder.report.rowsOut = out.length;
  const report = builder.finish(options.warn);
  if (out.length === 0) {
    const loc = first?.file === undefined ? {} : { file: first.file };
    throw new DatasetError(
      report.rowsIn === 0 ? "dataset is empty (no rows)" : `no row survived tokenisation (${report.rowsIn} in)`,
      loc,
    );
  }
  return { examples: out, report };
}
