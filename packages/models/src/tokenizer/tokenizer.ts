/**
 * `PreTrainedTokenizer`: a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) on
 * `@huggingface/tokenizers`, with the parts that library leaves out: special-token resolution,
 * batching, padding, truncation and chat templates.
 * @module
 */
import type { Tokenizer } from "@huggingface/tokenizers";
import { ConfigError, type TokenizerLike } from "@prefkit/core";
import { readJsonFile } from "../io/json.js";
import { createTokenizerBackend } from "./backend.js";
import { type EncodeBatchOptions, encodeBatch, padBatch, type TokenizerPadOptions } from "./batch.js";
import {
  type ApplyChatTemplateOptions,
  chatTemplatesFromField,
  defaultChatTemplate,
  pickChatTemplate,
  renderChatTemplate,
  type TemplateMessage,
} from "./chat-template.js";
import {
  configuredSide,
  NO_MODEL_MAX_LENGTH,
  type SpecialTokenIds,
  type SpecialTokenRole,
  type SpecialTokenStrings,
  type TokenizerConfigJson,
} from "./config.js";
import type { BatchEncoding, PaddingSide, TruncationSide } from "./padding.js";
import { type PromptCompletionIds, splitPromptCompletion, stripDoubledBos } from "./sequence.js";
import { resolveSpecialTokens, type SpecialToken, specialTokenLayout } from "./special-tokens.js";

/** How a {@link PreTrainedTokenizer} is built besides the two JSON objects. Every field is optional. */
export interface PreTrainedTokenizerOptions {
  /** Special tokens that override the config's, e.g. `{ eos: "<|im_end|>" }` for a bare `tokenizer.json`. */
  specialTokens?: SpecialTokenStrings;
  /** Contents of `special_tokens_map.json`; used for roles `tokenizer_config.json` leaves unset. */
  specialTokensMap?: Record<string, unknown>;
  /** Ids from `generation_config.json` / `config.json`; used for roles that have no token string at all. */
  fallbackTokenIds?: SpecialTokenIds;
  /** Chat template source; overrides the config's `chat_template` as the default template. */
  chatTemplate?: string;
  /** Named templates, added to those of the config's `chat_template`; `default` becomes {@link PreTrainedTokenizer.chatTemplate}. */
  chatTemplates?: Record<string, string>;
  /** Default padding side. Default: config `padding_side`, else `"right"` (HF's default). */
  paddingSide?: PaddingSide;
  /** Default truncation side. Default: config `truncation_side`, else `"right"`. */
  truncationSide?: TruncationSide;
  /** Length limit for `truncation: true` without `maxLength`. Default: config `model_max_length` unless it is HF's "no limit" sentinel. */
  modelMaxLength?: number;
  /**
   * Decoder clean-up of spaces before punctuation (`"a ,"` → `"a,"`). Default: config
   * `clean_up_tokenization_spaces`; when the config lacks it, `@huggingface/tokenizers` uses true.
   */
  cleanUpTokenizationSpaces?: boolean;
  /** File or folder the tokenizer came from, for error messages. */
  source?: string;
}

/**
 * A Hugging Face tokenizer (`tokenizer.json` + `tokenizer_config.json`) with transformers'
 * semantics for special tokens, batching and chat templates. Implements core's `TokenizerLike`.
 *
 * Load one with `AutoTokenizer.fromPretrained(dir)`, {@link PreTrainedTokenizer.fromFiles} or
 * {@link PreTrainedTokenizer.fromObjects}.
 *
 * Special tokens: each of bos/eos/pad/unk comes from `options.specialTokens`, else
 * `tokenizer_config.json` (string or AddedToken `{content}`), else `special_tokens_map.json`,
 * else the id in `generation_config.json`/`config.json`. `padTokenId` stays undefined when the
 * model defines no pad token, as in HF; call {@link ensurePadToken} to use eos, as TRL does.
 */
export class PreTrainedTokenizer implements TokenizerLike {
  /** The `@huggingface/tokenizers` instance doing the actual work. */
  readonly backend: Tokenizer;
  /** The `tokenizer_config.json` object it was built with (`{}` when there was none). */
  readonly config: TokenizerConfigJson;
  /** File or folder it came from, if known. */
  readonly source: string | undefined;
  /** Default side for padding in {@link encodeBatch} and {@link pad}. */
  paddingSide: PaddingSide;
  /** Default side for truncation in {@link encodeBatch}. */
  truncationSide: TruncationSide;
  /** Limit for `truncation: true` without an explicit `maxLength`. */
  modelMaxLength: number | undefined;
  /**
   * The default chat template's Jinja source, or undefined. Assign to use another one, e.g.
   * `tok.chatTemplate = CHATML_TEMPLATE`.
   */
  chatTemplate: string | undefined;
  /** Named templates (a `chat_template` list in the config), by name. */
  readonly chatTemplates: Record<string, string>;
  /** Whether {@link decode} cleans up spaces before punctuation by default. */
  readonly cleanUpTokenizationSpaces: boolean;

  private readonly special: Map<SpecialTokenRole, SpecialToken>;
  private specialPrefix: number[] = [];
  private specialSuffix: number[] = [];
  private vocabSizeCache: number | undefined;

  /**
   * Build from parsed JSON. Prefer {@link fromObjects}, {@link fromFiles} or `AutoTokenizer`.
   * @throws ConfigError when `@huggingface/tokenizers` rejects the JSON.
   */
  constructor(
    tokenizerJson: object,
    tokenizerConfig: TokenizerConfigJson = {},
    options: PreTrainedTokenizerOptions = {},
  ) {
    this.source = options.source;
    this.config = tokenizerConfig;
    const built = createTokenizerBackend(
      tokenizerJson,
      tokenizerConfig,
      options.cleanUpTokenizationSpaces,
      this.source,
    );
    this.backend = built.backend;
    this.cleanUpTokenizationSpaces = built.cleanUpTokenizationSpaces;
    this.special = resolveSpecialTokens(this.backend, tokenizerConfig, options);

    this.paddingSide = options.paddingSide ?? configuredSide(tokenizerConfig.padding_side, "padding_side", this.source);
    this.truncationSide =
      options.truncationSide ?? configuredSide(tokenizerConfig.truncation_side, "truncation_side", this.source);
    const maxLen = options.modelMaxLength ?? tokenizerConfig.model_max_length;
    this.modelMaxLength = typeof maxLen === "number" && maxLen < NO_MODEL_MAX_LENGTH ? maxLen : undefined;

    this.chatTemplates = {
      ...chatTemplatesFromField(tokenizerConfig.chat_template, this.source),
      ...options.chatTemplates,
    };
    this.chatTemplate = defaultChatTemplate(this.chatTemplates, options.chatTemplate);
    this.detectSpecialTokenLayout();
  }

  /** Build from parsed `tokenizer.json` and (optional) `tokenizer_config.json` objects. */
  static fromObjects(
    tokenizerJson: object,
    tokenizerConfig?: TokenizerConfigJson,
    options?: PreTrainedTokenizerOptions,
  ): PreTrainedTokenizer {
    return new PreTrainedTokenizer(tokenizerJson, tokenizerConfig ?? {}, options);
  }

  /**
   * Load `tokenizer.json` and, if given, `tokenizer_config.json` (its `chat_template` included).
   * Without a config, `{}` is used: no special tokens unless `options.specialTokens` names them,
   * and `clean_up_tokenization_spaces` is true (the `@huggingface/tokenizers` default).
   * @throws ConfigError naming the file when a file is missing or not valid JSON.
   */
  static async fromFiles(
    tokenizerJsonPath: string,
    tokenizerConfigPath?: string,
    options: PreTrainedTokenizerOptions = {},
  ): Promise<PreTrainedTokenizer> {
    const tokenizerJson = await readJsonFile<object>(tokenizerJsonPath);
    const config =
      tokenizerConfigPath === undefined ? {} : await readJsonFile<TokenizerConfigJson>(tokenizerConfigPath);
    return new PreTrainedTokenizer(tokenizerJson, config, { ...options, source: options.source ?? tokenizerJsonPath });
  }

  /** Beginning-of-sequence token string, if any. */
  get bosToken(): string | undefined {
    return this.special.get("bos")?.token;
  }
  /** End-of-sequence token string, if any. */
  get eosToken(): string | undefined {
    return this.special.get("eos")?.token;
  }
  /** Padding token string, if any. */
  get padToken(): string | undefined {
    return this.special.get("pad")?.token;
  }
  /** Unknown-token string, if any. */
  get unkToken(): string | undefined {
    return this.special.get("unk")?.token;
  }
  /** Id of {@link bosToken}. */
  get bosTokenId(): number | undefined {
    return this.special.get("bos")?.id;
  }
  /** Id of {@link eosToken}. */
  get eosTokenId(): number | undefined {
    return this.special.get("eos")?.id;
  }
  /** Id of {@link padToken}; undefined when the model defines none (see {@link ensurePadToken}). */
  get padTokenId(): number | undefined {
    return this.special.get("pad")?.id;
  }
  /** Id of {@link unkToken}. */
  get unkTokenId(): number | undefined {
    return this.special.get("unk")?.id;
  }
  /** True when a default chat template is set. */
  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined;
  }
  /** Number of ids, added tokens included (the embedding matrix may be larger). */
  get vocabSize(): number {
    const size = this.vocabSizeCache ?? this.backend.get_vocab(true).size;
    this.vocabSizeCache = size;
    return size;
  }
  /** Ids the tokenizer puts before the text when special tokens are added (e.g. `[bos]`). */
  get prefixSpecialIds(): readonly number[] {
    return this.specialPrefix;
  }
  /** Ids the tokenizer puts after the text when special tokens are added (e.g. `[eos]`). */
  get suffixSpecialIds(): readonly number[] {
    return this.specialSuffix;
  }

  /**
   * Set a special token by its string, which must be in the vocabulary.
   * @throws ConfigError when it is not.
   */
  setSpecialToken(role: SpecialTokenRole, token: string): void {
    const id = this.backend.token_to_id(token);
    if (id === undefined) {
      throw new ConfigError(`"${token}" is not in the vocabulary`, { file: this.source, field: `${role}_token` });
    }
    this.special.set(role, { token, id });
    if (role === "bos" || role === "eos") this.detectSpecialTokenLayout();
  }

  /**
   * Make sure there is a pad token: keep the model's own, or else use eos, as TRL's trainers do
   * (`tokenizer.pad_token = tokenizer.eos_token`). Returns the pad id. Padding positions are
   * always masked by length, so a pad equal to eos does not hide real eos tokens.
   * @throws ConfigError when the tokenizer has neither pad nor eos.
   */
  ensurePadToken(): number {
    const pad = this.padTokenId;
    if (pad !== undefined) return pad;
    const eos = this.eosToken;
    const eosId = this.eosTokenId;
    if (eos === undefined || eosId === undefined) {
      throw new ConfigError("no pad token and no eos token to use instead; call setSpecialToken('pad', ...)", {
        file: this.source,
        field: "pad_token",
      });
    }
    this.special.set("pad", { token: eos, id: eosId });
    return eosId;
  }

  /** Token id of a string, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.backend.token_to_id(token);
  }

  /** Token string of an id, or undefined when out of range. */
  idToToken(id: number): string | undefined {
    return this.backend.id_to_token(id);
  }

  /** Split text into token strings (no special tokens added). */
  tokenize(text: string): string[] {
    return this.backend.tokenize(text, { add_special_tokens: false });
  }

  /**
   * Encode text to ids. `addSpecialTokens` (default true) adds what the tokenizer adds to a
   * single text: BOS for Llama/Mistral-style tokenizers, nothing for Qwen, Llama 3 (this copy)
   * or SmolLM2. Special-token strings inside the text are always matched as special tokens.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.backend.encode(text, { add_special_tokens: false }).ids;
    if (options.addSpecialTokens === false) return ids;
    return [...this.specialPrefix, ...ids, ...this.specialSuffix];
  }

  /**
   * Decode ids to text. An empty list gives `""`.
   * @param options.skipSpecialTokens drop special tokens (BOS, EOS, pad, ChatML markers...).
   * @param options.cleanUpTokenizationSpaces override {@link cleanUpTokenizationSpaces}.
   */
  decode(
    ids: readonly number[],
    options: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean } = {},
  ): string {
    if (ids.length === 0) return "";
    return this.backend.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? null,
    });
  }

  /** {@link decode} for each row. */
  decodeBatch(rows: readonly (readonly number[])[], options: { skipSpecialTokens?: boolean } = {}): string[] {
    return rows.map((r) => this.decode(r, options));
  }

  /**
   * Encode several texts into one padded batch, as HF's `tokenizer(texts, padding=..., truncation=...)`.
   * Truncation keeps the special tokens and cuts the text's own ids on {@link truncationSide}.
   * @throws ConfigError when padding is requested without a pad token (call {@link ensurePadToken}),
   * or truncation / `"max_length"` padding has no length to use.
   */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): BatchEncoding {
    return encodeBatch(this, texts, options);
  }

  /**
   * Pad already-tokenized rows with {@link padTokenId} on {@link paddingSide}.
   * @throws ConfigError when there is no pad token (call {@link ensurePadToken} first).
   */
  pad(rows: readonly (readonly number[])[], options: TokenizerPadOptions = {}): BatchEncoding {
    return padBatch(this, rows, options);
  }

  /**
   * Render a conversation with the chat template, as transformers' `apply_chat_template`.
   *
   * - The template gets `bos_token`, `eos_token`, `pad_token`, `unk_token`, `messages`,
   *   `add_generation_prompt`, `tools`, `documents` and every extra option key unchanged
   *   (e.g. `enable_thinking: false` for Qwen3).
   * - `tokenize: true` returns ids encoded WITHOUT adding special tokens, as HF does, so a
   *   template that writes `bos_token` itself does not get a second BOS.
   * - Template choice: `options.chatTemplate` (a name in {@link chatTemplates} or Jinja source),
   *   else the `tool_use` template when `tools` are given and one exists, else {@link chatTemplate}.
   *
   * @throws ConfigError when there is no template, or the template fails or raises.
   */
  applyChatTemplate(
    messages: readonly TemplateMessage[],
    options: ApplyChatTemplateOptions & { tokenize: true },
  ): number[];
  applyChatTemplate(
    messages: readonly TemplateMessage[],
    options?: ApplyChatTemplateOptions & { tokenize?: false },
  ): string;
  applyChatTemplate(messages: readonly TemplateMessage[], options?: ApplyChatTemplateOptions): string | number[];
  applyChatTemplate(messages: readonly TemplateMessage[], options: ApplyChatTemplateOptions = {}): string | number[] {
    const template = pickChatTemplate(this.chatTemplates, this.chatTemplate, options, this.source);
    const text = renderChatTemplate(template, messages, options, {
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      pad_token: this.padToken,
      unk_token: this.unkToken,
    });
    return options.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }

  /**
   * True when the chat template writes {@link bosToken} at the very start (Llama 3, Mistral).
   * Then its output must be tokenized without special tokens, or BOS appears twice.
   */
  chatTemplateAddsBos(options: ApplyChatTemplateOptions = {}): boolean {
    const bos = this.bosToken;
    if (bos === undefined) return false;
    const text = this.applyChatTemplate([{ role: "user", content: "x" }], { ...options, tokenize: false });
    return text.startsWith(bos);
  }

  /** Remove a doubled BOS at the start of `ids` (see the standalone `stripDoubledBos`). */
  stripDoubledBos(ids: readonly number[]): number[] {
    return stripDoubledBos(ids, this.bosTokenId);
  }

  /**
   * Tokenize a conversational prompt and completion for preference/SFT data, splitting in token
   * space as TRL does:
   * - the prompt is rendered with `addGenerationPrompt` when it ends on a non-assistant turn, and
   *   with `continueFinalMessage` when it ends on an assistant turn;
   * - the full conversation (prompt + completion) is rendered without either;
   * - if the prompt ids are a prefix of the full ids, the completion is the remainder;
   * - otherwise (`prefixPreserving: false`, e.g. Qwen3 reasoning in the completion with
   *   `enable_thinking: false`) the split falls at the longest common token prefix, which is what
   *   TRL's common-prefix rule does in characters. Callers may prefer to reject such rows.
   *
   * Extra options (e.g. `enable_thinking`) go to both renderings.
   */
  tokenizePromptCompletion(
    prompt: readonly TemplateMessage[],
    completion: readonly TemplateMessage[],
    options: Omit<ApplyChatTemplateOptions, "tokenize" | "addGenerationPrompt" | "continueFinalMessage"> = {},
  ): PromptCompletionIds {
    const endsOnAssistant = prompt.at(-1)?.role === "assistant";
    const promptIds = this.applyChatTemplate(prompt, {
      ...options,
      addGenerationPrompt: !endsOnAssistant,
      continueFinalMessage: endsOnAssistant,
      tokenize: true,
    });
    const fullIds = this.applyChatTemplate([...prompt, ...completion], { ...options, tokenize: true });
    return splitPromptCompletion(promptIds, fullIds);
  }

  /** Work out which ids `encode(text, {addSpecialTokens: true})` puts around the text. */
  private detectSpecialTokenLayout(): void {
    const layout = specialTokenLayout(this.backend, this.config, this.bosTokenId, this.eosTokenId, this.source);
    this.specialPrefix = layout.prefix;
    this.specialSuffix = layout.suffix;
  }
}
