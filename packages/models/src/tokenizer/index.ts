/**
 * Tokenizers and chat templates: Hugging Face `tokenizer.json` on `@huggingface/tokenizers`,
 * chat templates on `@huggingface/jinja`, plus padding, truncation and token-space helpers
 * for chat data.
 * @module
 */
export { AutoTokenizer } from "./auto.js";
export {
  type ApplyChatTemplateOptions,
  type ChatTemplateContext,
  chatTemplatesFromField,
  renderChatTemplate,
  type TemplateMessage,
} from "./chat-template.js";
export {
  type AddedTokenLike,
  NO_MODEL_MAX_LENGTH,
  type NamedChatTemplate,
  type SpecialTokenIds,
  type SpecialTokenRole,
  type SpecialTokenStrings,
  specialTokenIds,
  specialTokenStrings,
  type TokenizerConfigJson,
  tokenContent,
} from "./config.js";
export type { EncodeBatchOptions, TokenizerPadOptions } from "./batch.js";
export {
  type BatchEncoding,
  type PadOptions,
  type PaddingSide,
  padSequences,
  type TruncationSide,
  truncateSequence,
} from "./padding.js";
export { commonPrefixLength, isPrefix, type PromptCompletionIds, stripDoubledBos } from "./sequence.js";
export { CHATML_TEMPLATE, MISTRAL_INST_TEMPLATE, SMOLLM2_CHAT_TEMPLATE } from "./templates.js";
export { PreTrainedTokenizer, type PreTrainedTokenizerOptions } from "./tokenizer.js";
