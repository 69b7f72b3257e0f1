import { DatasetError } from "../errors/index.js";
import type { ChatMessage } from "../interfaces/index.js";
import type { LoadedDataset } from "./load.js";
import { keepIdenticalPair, sameMessage } from "./identical.js";
import { type BadRowOptions, type DataReport, ReportBuilder } from "./report.js";
import type {
  CompletionExample,
  Conversation,
  PreferenceExample,
  RowSource,
  SourcedRow,
  TextOrConversation,
} from "./types.js";

/**
 * TRL dataset types, detected from the column names:
 * `preference` {prompt, chosen, rejected}; `implicit_preference` {chosen, rejected};
 * `prompt_completion` {prompt, completion}; `language_modeling` {text} or {messages}; `prompt_only` {prompt}.
 */
export type DatasetKind =
  | "preference"
  | "implicit_preference"
  | "prompt_completion"
  | "language_modeling"
  | "prompt_only";

/** TRL styles: `standard` (string fields) or `conversational` (lists of {role, content} messages). */
export type DatasetStyle = "standard" | "conversational";

/** A detected (or forced) dataset format. */
export interface DatasetFormat {
  /** Which columns the rows have. */
  kind: DatasetKind;
  /** Strings or message lists. */
  style: DatasetStyle;
}

/** Rows given to a prepare function: a loaded file or rows with provenance. */
export type DatasetInput = LoadedDataset | readonly SourcedRow[];

/** Options of {@link preparePreferenceDataset} and {@link prepareCompletionDataset}. */
export interface PrepareOptions extends BadRowOptions {
  /** Force the format instead of detecting it. */
  format?: DatasetFormat;
  /**
   * Preference rows whose chosen and rejected are the same: `drop` (default: counted and reported, they
   * carry no preference signal; a dataset of only such rows would hold the DPO loss at ln 2 forever),
   * `error` (a {@link DatasetError} naming the row), or `keep`.
   */
  identicalPairs?: "drop" | "error" | "keep";
}

/** Message roles a conversation may use (TRL's and the chat templates'). */
export const CHAT_ROLES: readonly string[] = Object.freeze(["system", "user", "assistant", "tool"]);

/** The result of a prepare function: normalised examples, the format they had, and the counts. */
export interface PreparedDataset<E> {
  /** Normalised examples, in input order. */
  examples: E[];
  /** The format the rows were read as. */
  format: DatasetFormat;
  /** Rows in, rows out, drops by reason. */
  report: DataReport;
}

/** Rows sampled for detection: enough that one malformed first row does not decide the format. */
const DETECTION_SAMPLE = 100;

function kindOf(data: Record<string, unknown>): DatasetKind | undefined {
  const has = (k: string) => data[k] !== undefined;
  if (has("chosen") && has("rejected")) return has("prompt") ? "preference" : "implicit_preference";
  if (has("prompt") && has("completion")) return "prompt_completion";
  if (has("messages") || has("text")) return "language_modeling";
  if (has("prompt")) return "prompt_only";
  return undefined;
}

const STYLE_FIELD: Record<DatasetKind, string[]> = {
  preference: ["chosen", "prompt"],
  implicit_preference: ["chosen"],
  prompt_completion: ["completion", "prompt"],
  language_modeling: ["messages", "text"],
  prompt_only: ["prompt"],
};

function styleOf(data: Record<string, unknown>, kind: DatasetKind): DatasetStyle | undefined {
  for (const f of STYLE_FIELD[kind]) {
    const v = data[f];
    if (Array.isArray(v)) return "conversational";
    if (typeof v === "string") return "standard";
  }
  return undefined;
}

function mostCommon<T>(values: T[]): T | undefined {
  const counts = new Map<T, number>();
  let best: T | undefined;
  let bestN = 0;
  for (const v of values) {
    const n = (counts.get(v) ?? 0) + 1;
    counts.set(v, n);
    if (n > bestN) {
      best = v;
      bestN = n;
    }
  }
  return best;
}

/** @internal The rows of a loaded file or of an in-memory row list. */
export function rowsOf(input: DatasetInput): readonly SourcedRow[] {
  return Array.isArray(input) ? (input as readonly SourcedRow[]) : (input as LoadedDataset).rows;
}

/** @internal The file the rows came from, if any. */
export function fileOf(input: DatasetInput): string | undefined {
  return Array.isArray(input) ? (input as readonly SourcedRow[])[0]?.source.file : (input as LoadedDataset).file;
}

/**
 * Detect the TRL format of a dataset from its first rows (the most common kind and style among the
 * first 100 rows, so a single malformed row does not decide it), as TRL does per dataset.
 * @throws DatasetError if the dataset is empty or no row has recognisable columns.
 */
export function detectFormat(input: DatasetInput): DatasetFormat {
  const rows = rowsOf(input);
  const file = fileOf(input);
  if (rows.length === 0) throw new DatasetError("dataset is empty (no rows)", file === undefined ? {} : { file });
  const sample = rows.slice(0, DETECTION_SAMPLE);
  const kind = mostCommon(sample.map((r) => kindOf(r.data)).filter((k): k is DatasetKind => k !== undefined));
  if (kind === undefined) {
    throw new DatasetError(
      "cannot detect the dataset format: expected columns {prompt, chosen, rejected}, {chosen, rejected}, " +
        "{prompt, completion}, {text}, {messages} or {prompt}",
      file === undefined ? {} : { file },
    );
  }
  const style =
    mostCommon(
      sample
        .filter((r) => kindOf(r.data) === kind)
        .map((r) => styleOf(r.data, kind))
        .filter((s): s is DatasetStyle => s !== undefined),
    ) ?? "standard";
  return { kind, style };
}

/** True for a list of {role: string, content: string} messages (TRL's `is_conversational` per field). */
export function isConversation(value: unknown): value is Conversation {
  return (
    Array.isArray(value) &&
    value.every(
      (m) =>
        typeof m === "object" &&
        m !== null &&
        typeof (m as ChatMessage).role === "string" &&
        typeof (m as ChatMessage).content === "string",
    )
  );
}

/** What is wrong with a field of a row. */
export interface FieldProblem {
  /** Short reason, the key in the data report (`wrong type`, `unknown role`, …). */
  reason: string;
  /** The message for the error. */
  detail: string;
  /** The exact place, when finer than the column: `chosen[1].role`. */
  at?: string;
}

/**
 * What is wrong with one message list (`field` names it in the result), or undefined. Roles must be one of
 * {@link CHAT_ROLES}: a typo such as "usr" would otherwise be rendered by the chat template as a turn of its
 * own, or dropped, without a word.
 */
export function conversationProblem(value: readonly unknown[], field: string): FieldProblem | undefined {
  for (let i = 0; i < value.length; i++) {
    const m = value[i] as Partial<ChatMessage> | null;
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      return { reason: "wrong type", detail: `message ${i} is not an object` };
    }
    if (typeof m.role !== "string") return { reason: "wrong type", detail: `message ${i} has no string "role"` };
    if (!CHAT_ROLES.includes(m.role)) {
      return {
        reason: "unknown role",
        detail: `message ${i} has role ${JSON.stringify(m.role)}; expected one of ${CHAT_ROLES.join(", ")}`,
        at: `${field}[${i}].role`,
      };
    }
    if (typeof m.content !== "string") return { reason: "wrong type", detail: `message ${i} has no string "content"` };
  }
  return undefined;
}

/** Why a field fails its style, or undefined if it is fine. */
function fieldProblem(value: unknown, style: DatasetStyle, field: string): FieldProblem | undefined {
  if (value === undefined || value === null) return { reason: "missing field", detail: "missing field" };
  const wrong = (detail: string): FieldProblem => ({ reason: "wrong type", detail });
  if (style === "standard")
    return typeof value === "string" ? undefined : wrong(`expected a string, got ${typeName(value)}`);
  if (!Array.isArray(value)) return wrong(`expected a list of {role, content} messages, got ${typeName(value)}`);
  return conversationProblem(value, field);
}

/** @internal "a string", "an array", "null": how a wrong value is named in an error. */
export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** True when a completion carries no text at all. */
export function isEmptyText(value: TextOrConversation): boolean {
  return typeof value === "string" ? value.trim() === "" : value.every((m) => m.content.trim() === "");
}

/**
 * Split an implicit-prompt pair into prompt and completions, as TRL's `extract_prompt`: the prompt is the
 * longest common prefix, taken per message for conversations and per character for strings. For strings,
 * if the split lands right after a space, that space moves into both completions.
 * A completion can come out empty (one transcript a prefix of the other); callers treat that as a bad row.
 */
export function extractPrompt<T extends TextOrConversation>(
  chosen: T,
  rejected: T,
): { prompt: T; chosen: T; rejected: T } {
  if (typeof chosen === "string" && typeof rejected === "string") {
    const n = Math.min(chosen.length, rejected.length);
    let idx = 0;
    while (idx < n && chosen[idx] === rejected[idx]) idx++;
    if (idx > 0 && chosen[idx - 1] === " ") idx--;
    return { prompt: chosen.slice(0, idx), chosen: chosen.slice(idx), rejected: rejected.slice(idx) } as {
      prompt: T;
      chosen: T;
      rejected: T;
    };
  }
  if (Array.isArray(chosen) && Array.isArray(rejected)) {
    const n = Math.min(chosen.length, rejected.length);
    let idx = 0;
    while (idx < n && sameMessage(chosen[idx]!, rejected[idx]!)) idx++;
    return { prompt: chosen.slice(0, idx), chosen: chosen.slice(idx), rejected: rejected.slice(idx) } as {
      prompt: T;
      chosen: T;
      rejected: T;
    };
  }
  throw new TypeError("extractPrompt: chosen and rejected must both be strings or both be message lists");
}

/** @internal Checks the listed fields of one row; reports the first problem through the builder. Returns false if bad. */
export function checkFields(
  row: SourcedRow,
  fields: string[],
  style: DatasetStyle,
  builder: ReportBuilder,
  options: BadRowOptions,
): boolean {
  for (const field of fields) {
    const problem = fieldProblem(row.data[field], style, field);
    if (problem === undefined) continue;
    builder.bad(options.onBadRow, row.source, problem.reason, problem.detail, problem.at ?? field);
    return false;
  }
  return true;
}

function checkMargin(row: SourcedRow, builder: ReportBuilder, options: BadRowOptions): number | undefined | false {
  const m = row.data["margin"];
  if (m === undefined || m === null) return undefined;
  if (typeof m === "number" && Number.isFinite(m)) return m;
  builder.bad(options.onBadRow, row.source, "wrong type", `expected a finite number, got ${typeName(m)}`, "margin");
  return false;
}

/** @internal `example` with its provenance attached. */
export function withSource<E extends object>(example: E, source: RowSource): E & { source: RowSource } {
  return Object.assign(example, { source });
}

/**
 * Normalise a preference dataset (explicit or implicit prompt, either style) to {@link PreferenceExample}s.
 * Implicit prompts are extracted with {@link extractPrompt}. Malformed rows (missing field, wrong type, a
 * message role outside {@link CHAT_ROLES}, empty completion, bad `margin`) throw a {@link DatasetError}
 * naming file, row and field, or are dropped and counted with `onBadRow: "skip"`. Rows whose chosen and
 * rejected are the same are dropped and counted by default (`identicalPairs`).
 * @throws DatasetError for an empty dataset, a non-preference dataset, or (by default) a malformed row.
 */
export function preparePreferenceDataset(
  input: DatasetInput,
  options: PrepareOptions = {},
): PreparedDataset<PreferenceExample> {
  const rows = rowsOf(input);
  const file = fileOf(input);
  const format = options.format ?? detectFormat(input);
  if (format.kind !== "preference" && format.kind !== "implicit_preference") {
    throw new DatasetError(
      `expected a preference dataset ({prompt, chosen, rejected} or {chosen, rejected}), found ${format.kind}`,
      file === undefined ? {} : { file },
    );
  }
  const builder = new ReportBuilder("format");
  const examples: PreferenceExample[] = [];
  const fields = format.kind === "preference" ? ["prompt", "chosen", "rejected"] : ["chosen", "rejected"];
  for (const row of rows) {
    builder.report.rowsIn++;
    if (!checkFields(row, fields, format.style, builder, options)) continue;
    const margin = checkMargin(row, builder, options);
    if (margin === false) continue;
    const d = row.data as Record<string, TextOrConversation>;
    if (!keepIdenticalPair(d["chosen"]!, d["rejected"]!, row.source, builder, options.identicalPairs)) continue;
    const ex: PreferenceExample =
      format.kind === "preference"
        ? { prompt: d["prompt"]!, chosen: d["chosen"]!, rejected: d["rejected"]! }
        : extractPrompt(d["chosen"]!, d["rejected"]!);
    const empty = isEmptyText(ex.chosen) ? "chosen" : isEmptyText(ex.rejected) ? "rejected" : undefined;
    if (empty !== undefined) {
      builder.bad(options.onBadRow, row.source, "empty completion", "empty completion", empty);
      continue;
    }
    if (margin !== undefined) ex.margin = margin;
    examples.push(withSource(ex, row.source));
  }
  return finishPrepared(examples, format, builder, options, file);
}

/**
 * Normalise an SFT dataset to {@link CompletionExample}s: prompt-completion rows as they are, and
 * language-modelling rows (`text` or `messages`) as an empty prompt with the whole text as completion.
 * Malformed rows follow `onBadRow` as in {@link preparePreferenceDataset}.
 * @throws DatasetError for an empty dataset, a dataset of another kind, or (by default) a malformed row.
 */
export function prepareCompletionDataset(
  input: DatasetInput,
  options: PrepareOptions = {},
): PreparedDataset<CompletionExample> {
  const rows = rowsOf(input);
  const file = fileOf(input);
  const format = options.format ?? detectFormat(input);
  if (format.kind !== "prompt_completion" && format.kind !== "language_modeling") {
    throw new DatasetError(
      `expected a prompt-completion ({prompt, completion}) or language-modelling ({text}/{messages}) dataset, found ${format.kind}`,
      file === undefined ? {} : { file },
    );
  }
  const builder = new ReportBuilder("format");
  const examples: CompletionExample[] = [];
  const conv = format.style === "conversational";
  const fields = format.kind === "prompt_completion" ? ["prompt", "completion"] : [conv ? "messages" : "text"];
  for (const row of rows) {
    builder.report.rowsIn++;
    if (!checkFields(row, fields, format.style, builder, options)) continue;
    const d = row.data as Record<string, TextOrConversation>;
    const ex: CompletionExample =
      format.kind === "prompt_completion"
        ? { prompt: d["prompt"]!, completion: d["completion"]! }
        : { prompt: conv ? [] : "", completion: d[fields[0]!]! };
    if (isEmptyText(ex.completion)) {
      builder.bad(options.onBadRow, row.source, "empty completion", "empty completion", fields.at(-1));
      continue;
    }
    examples.push(withSource(ex, row.source));
  }
  return finishPrepared(examples, format, builder, options, file);
}

/** @internal Closes a prepare stage: counts, the drop warning, and an error when nothing survived. */
export function finishPrepared<E>(
  examples: E[],
  format: DatasetFormat,
  builder: ReportBuilder,
  options: BadRowOptions,
  file: string | undefined,
): PreparedDataset<E> {
  const report = builder.finishRows(
    examples.length,
    options.warn,
    file,
    (r) => `dataset has no usable rows (${r.rowsIn} in, all dropped)`,
  );
  return { examples, format, report };
}
