/**
 * Preference pairs whose chosen and rejected are the same: no preference signal, so they are dropped by default.
 * Internal to the data pipeline; `sameCompletion` and `IDENTICAL_PAIR_REASON` are public.
 * @module
 */
import type { ChatMessage } from "../interfaces/index.js";
import type { ReportBuilder } from "./report.js";
import type { RowSource, TextOrConversation } from "./types.js";

/** Report reason of a preference row whose chosen and rejected are the same. */
export const IDENTICAL_PAIR_REASON = "chosen == rejected";

/** True when two messages have the same role and content. */
export function sameMessage(a: ChatMessage, b: ChatMessage): boolean {
  return a.role === b.role && a.content === b.content;
}

/** True when two completions (strings, or message lists compared by role and content) are the same. */
export function sameCompletion(a: TextOrConversation, b: TextOrConversation): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  return a.length === b.length && a.every((m, i) => sameMessage(m, b[i]!));
}

/**
 * Apply the `identicalPairs` policy (default `drop`) to one pair: false, after counting the drop or
 * throwing for `error`, when chosen and rejected are the same and the row must go.
 */
export function keepIdenticalPair(
  chosen: TextOrConversation,
  rejected: TextOrConversation,
  source: RowSource | undefined,
  builder: ReportBuilder,
  policy: "drop" | "error" | "keep" = "drop",
): boolean {
  if (policy === "keep" || !sameCompletion(chosen, rejected)) return true;
  if (policy === "error") {
    builder.bad("error", source, IDENTICAL_PAIR_REASON, "chosen and rejected are the same: the pair has no preference");
  }
  builder.drop(source, IDENTICAL_PAIR_REASON);
  return false;
}
