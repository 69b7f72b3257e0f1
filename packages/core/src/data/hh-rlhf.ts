import type { DatasetInput, PreparedDataset, PrepareOptions } from "./formats.js";
import { keepIdenticalPair } from "./identical.js";
import { type BadRowOptions, ReportBuilder } from "./report.js";
import type { Conversation, PreferenceExample, SourcedRow } from "./types.js";
import { DatasetError } from "../errors/index.js";

const ASSISTANT = "\n\nAssistant:";
const TURN = /\n\n(Human|Assistant):/g;

/**
 * Split an Anthropic HH-RLHF transcript ("\n\nHuman: …\n\nAssistant: …") into messages.
 * `Human` becomes `user`, `Assistant` becomes `assistant`; the one space after each marker is removed.
 * Returns undefined when the text does not start with a turn marker.
 */
export function parseHhTranscript(text: string): Conversation | undefined {
  const marks = [...text.matchAll(TURN)];
  if (marks.length === 0 || marks[0]!.index !== 0) return undefined;
  return marks.map((m, i) => {
    const start = m.index + m[0].length;
    const end = i + 1 < marks.length ? marks[i + 1]!.index : text.length;
    let content = text.slice(start, end);
    if (content.startsWith(" ")) content = content.slice(1);
    return { role: m[1] === "Human" ? "user" : "assistant", content };
  });
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** Options of {@link convertHhRlhf}. */
export interface HhRlhfOptions extends BadRowOptions, Pick<PrepareOptions, "identicalPairs"> {
  /**
   * Keep pairs whose final assistant turn is empty (a few HH-RLHF pairs prefer an empty reply). With a chat
   * template the empty turn still tokenises to its end-of-turn tokens. Default false: dropped as `empty completion`.
   */
  keepEmptyCompletions?: boolean;
}

/**
 * Convert HH-RLHF rows ({chosen, rejected} whole transcripts) to conversational preference examples:
 * the common prefix of the two transcripts is backed off to its last "\n\nAssistant:", split into
 * user/assistant turns, and the final assistant turns become `chosen` and `rejected`.
 *
 * Rows are dropped (counted by reason in the report) when: a field is missing or not a string, the
 * transcripts share no "\n\nAssistant:" (`no shared prompt`), they diverge before the final assistant turn
 * (`diverge before final turn`: what remains is more than one assistant turn), the prompt does not end on a
 * user turn, or a final turn is empty (unless `keepEmptyCompletions`), or chosen and rejected are the same
 * (`identicalPairs`, dropped by default). With `onBadRow: "error"` the first such
 * row throws instead. The default here is `skip`, since real HH-RLHF files contain a few such rows.
 * @throws DatasetError for an empty input or when no row converts.
 */
export function convertHhRlhf(
  input: DatasetInput,
  options: HhRlhfOptions = {},
): PreparedDataset<PreferenceExample<Conversation>> {
  const rows: readonly SourcedRow[] = Array.isArray(input) ? input : (input as { rows: SourcedRow[] }).rows;
  const file = rows[0]?.source.file;
  const loc = file === undefined ? {} : { file };
  if (rows.length === 0) throw new DatasetError("dataset is empty (no rows)", loc);
  const policy = options.onBadRow ?? "skip";
  const builder = new ReportBuilder("hh-rlhf");
  const examples: PreferenceExample<Conversation>[] = [];
  for (const row of rows) {
    builder.report.rowsIn++;
    const { chosen, rejected } = row.data;
    if (typeof chosen !== "string" || typeof rejected !== "string") {
      const field = typeof chosen !== "string" ? "chosen" : "rejected";
      const missing = row.data[field] === undefined;
      builder.bad(
        policy,
        row.source,
        missing ? "missing field" : "wrong type",
        missing ? "missing field" : "expected a string",
        field,
      );
      continue;
    }
    if (!keepIdenticalPair(chosen, rejected, row.source, builder, options.identicalPairs)) continue;
    const common = chosen.slice(0, commonPrefixLength(chosen, rejected));
    const cut = common.lastIndexOf(ASSISTANT);
    if (cut < 0) {
      builder.bad(policy, row.source, "no shared prompt", 'chosen and rejected share no "\\n\\nAssistant:" prefix');
      continue;
    }
    const prompt = parseHhTranscript(chosen.slice(0, cut));
    const chosenTurns = parseHhTranscript(chosen.slice(cut));
    const rejectedTurns = parseHhTranscript(rejected.slice(cut));
    if (prompt === undefined || chosenTurns === undefined || rejectedTurns === undefined) {
      builder.bad(policy, row.source, "not a transcript", 'expected "\\n\\nHuman: …\\n\\nAssistant: …" transcripts');
      continue;
    }
    if (chosenTurns.length !== 1 || rejectedTurns.length !== 1) {
      builder.bad(
        policy,
        row.source,
        "diverge before final turn",
        "chosen and rejected diverge before their final assistant turn",
      );
      continue;
    }
    if (prompt.at(-1)?.role !== "user") {
      builder.bad(policy, row.source, "prompt not ending on user turn", "the prompt does not end on a user turn");
      continue;
    }
    const empty =
      chosenTurns[0]!.content.trim() === ""
        ? "chosen"
        : rejectedTurns[0]!.content.trim() === ""
          ? "rejected"
          : undefined;
    if (empty !== undefined && !options.keepEmptyCompletions) {
      builder.bad(policy, row.source, "empty completion", "empty completion", empty);
      continue;
    }
    examples.push({ prompt, chosen: chosenTurns, rejected: rejectedTurns, source: row.source });
  }
  const report = builder.finishRows(
    examples.length,
    options.warn,
    file,
    (r) => `no HH-RLHF row converted (${r.rowsIn} in)`,
  );
  return { examples, format: { kind: "preference", style: "conversational" }, report };
}
