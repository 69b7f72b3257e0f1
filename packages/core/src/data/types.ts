import type { ChatMessage } from "../interfaces/index.js";

/** Where a dataset row came from: the file (if any) and its 1-based row number (the line number for JSONL). */
export interface RowSource {
  /** Path of the file the row was read from; absent for in-memory rows. */
  file?: string;
  /** 1-based row number: the line number in JSONL, the array position in a JSON array. */
  row: number;
}

/** One raw dataset row (a parsed JSON object) with its provenance. */
export interface SourcedRow {
  /** The parsed JSON object. */
  data: Record<string, unknown>;
  /** Where it came from. */
  source: RowSource;
}

/** A conversation: a list of {role, content} messages (TRL's conversational format). */
export type Conversation = ChatMessage[];

/** A text field in either TRL style: a plain string (standard) or a message list (conversational). */
export type TextOrConversation = string | Conversation;

/** What to do with a malformed row: throw a {@link DatasetError} naming it, or drop it and count it. */
export type BadRowPolicy = "error" | "skip";

/**
 * A preference pair with an explicit prompt, in either style (all three fields share the style).
 * Implicit-prompt rows are turned into this by {@link extractPrompt}.
 */
export interface PreferenceExample<T extends TextOrConversation = TextOrConversation> {
  /** The prompt (may be empty). */
  prompt: T;
  /** The preferred completion. */
  chosen: T;
  /** The dispreferred completion. */
  rejected: T;
  /** Optional per-row reward margin (TRL's `margin` column for reward modelling). */
  margin?: number;
  /** Provenance, for error messages. */
  source?: RowSource;
}

/** A prompt-completion example (SFT); a language-modelling row is one with an empty prompt. */
export interface CompletionExample<T extends TextOrConversation = TextOrConversation> {
  /** The prompt; empty for language-modelling rows (`text` / `messages`). */
  prompt: T;
  /** The completion (for language-modelling rows: the whole text or conversation). */
  completion: T;
  /** Provenance, for error messages. */
  source?: RowSource;
}

/**
 * Which end of an over-long prompt + completion `maxLength` keeps (TRL's `truncation_mode`): `keep_start`
 * cuts the end of the completion, `keep_end` keeps the last `maxLength` tokens (cutting the prompt's start).
 */
export type TruncationMode = "keep_start" | "keep_end";

/**
 * A tokenised preference pair. Full sequences are `promptIds ++ chosenIds` and
 * `(rejectedPromptIds ?? promptIds) ++ rejectedIds`.
 */
export interface TokenizedPreference {
  /** Prompt token ids (shared by both sequences unless `rejectedPromptIds` is set). */
  promptIds: number[];
  /** Chosen completion token ids. */
  chosenIds: number[];
  /** Rejected completion token ids. */
  rejectedIds: number[];
  /**
   * The rejected sequence's prompt when it differs from `promptIds` (then the chosen one's): `keep_end`
   * truncation keeps the last `maxLength` tokens of each sequence separately, as TRL's
   * `DataCollatorForPreference`, so two completions of different lengths keep different prompt tails.
   */
  rejectedPromptIds?: number[];
  /** Optional per-row reward margin. */
  margin?: number;
  /** Provenance. */
  source?: RowSource;
}

/** A tokenised prompt-completion example. The full sequence is `promptIds ++ completionIds`. */
export interface TokenizedCompletion {
  /** Prompt token ids (empty for language-modelling rows). */
  promptIds: number[];
  /** Completion token ids (the part the loss sees when training completion-only). */
  completionIds: number[];
  /** Provenance. */
  source?: RowSource;
}

/**
 * An unpaired preference example (TRL's "unpaired preference" type, what KTO trains on): one completion
 * with a thumbs-up (`label: true`, desirable) or thumbs-down (`label: false`, undesirable).
 */
export interface UnpairedExample<T extends TextOrConversation = TextOrConversation> {
  /** The prompt (may be empty). */
  prompt: T;
  /** The completion that was judged. */
  completion: T;
  /** `true` for a desirable completion, `false` for an undesirable one. */
  label: boolean;
  /** Provenance, for error messages (for a row unpaired from a pair: the pair's row). */
  source?: RowSource;
}

/** A tokenised unpaired example. The full sequence is `promptIds ++ completionIds`. */
export interface TokenizedUnpaired {
  /** Prompt token ids. */
  promptIds: number[];
  /** Completion token ids. */
  completionIds: number[];
  /** `true` for desirable, `false` for undesirable. */
  label: boolean;
  /** Provenance. */
  source?: RowSource;
}
