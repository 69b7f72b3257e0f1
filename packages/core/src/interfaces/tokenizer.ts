/** One chat message, as in transformers' conversational format. */
export interface ChatMessage {
  /** `system`, `user`, `assistant` (or a model-specific role). */
  role: string;
  /** The message text. */
  content: string;
}

/** Options of {@link TokenizerLike.applyChatTemplate} (rendering to a string). */
export interface ChatTemplateOptions {
  /** Append the header that starts an assistant turn. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `enable_thinking`). */
  [kwarg: string]: unknown;
}

/**
 * What the data pipeline needs from a tokenizer. `@prefkit/models`' `PreTrainedTokenizer`
 * implements it; tests may use a tiny fake.
 */
export interface TokenizerLike {
  /** Encode text to ids. `addSpecialTokens` (default true) adds BOS etc. as the tokenizer's post-processor says. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Decode ids to text. */
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Render a conversation with the model's chat template. */
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions): string;
  /** True when the tokenizer has a chat template. */
  readonly hasChatTemplate: boolean;
  /** Beginning-of-sequence id, if the model has one. */
  readonly bosTokenId: number | undefined;
  /** End-of-sequence id, if the model has one. */
  readonly eosTokenId: number | undefined;
  /** Padding id (often equal to eos). */
  readonly padTokenId: number | undefined;
}
