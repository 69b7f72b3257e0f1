/**
 * `AutoTokenizer.fromPretrained(dir)`: load a tokenizer from a Hugging Face model folder.
 * @module
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "@prefkit/core";
import { readJsonFile } from "../io/json.js";
import { chatTemplatesFromField } from "./chat-template.js";
import { type SpecialTokenIds, specialTokenIds, type TokenizerConfigJson } from "./config.js";
import { PreTrainedTokenizer, type PreTrainedTokenizerOptions } from "./tokenizer.js";

/**
 * Entry point mirroring transformers' `AutoTokenizer`. There is one tokenizer class in prefkit
 * ({@link PreTrainedTokenizer}); the files decide its behaviour.
 */
export const AutoTokenizer = {
  /**
   * Load the tokenizer in folder `dir`. Files read (only `tokenizer.json` is required):
   * - `tokenizer.json`: vocabulary, merges, normalizer, pre-tokenizer, post-processor, decoder;
   * - `tokenizer_config.json`: special tokens, `padding_side`, `truncation_side`,
   *   `model_max_length`, `chat_template`, `add_bos_token`/`add_eos_token`;
   * - `chat_template.jinja` (or `chat_template.json`): the chat template, preferred over the config's;
   * - `special_tokens_map.json`: special tokens the config leaves unset;
   * - `generation_config.json`, then `config.json`: `bos/eos/pad_token_id` for roles with no token at all.
   *
   * `options` override what the files say.
   * @throws ConfigError naming the file when `tokenizer.json` is missing or a file is not valid JSON.
   */
  async fromPretrained(dir: string, options: PreTrainedTokenizerOptions = {}): Promise<PreTrainedTokenizer> {
    const tokenizerPath = join(dir, "tokenizer.json");
    if (!existsSync(tokenizerPath)) {
      throw new ConfigError(
        "no tokenizer.json (prefkit needs the fast-tokenizer file, not only a SentencePiece model)",
        {
          file: tokenizerPath,
        },
      );
    }
    const optional = async (name: string) => {
      const p = join(dir, name);
      return existsSync(p) ? readJsonFile<Record<string, unknown>>(p) : undefined;
    };
    const tokenizerJson = await readJsonFile<object>(tokenizerPath);
    const config = ((await optional("tokenizer_config.json")) ?? {}) as TokenizerConfigJson;
    const specialTokensMap = await optional("special_tokens_map.json");
    const fallback: SpecialTokenIds = {
      ...specialTokenIds(await optional("config.json")),
      ...specialTokenIds(await optional("generation_config.json")),
    };

    let chatTemplates = chatTemplatesFromField(config.chat_template, join(dir, "tokenizer_config.json"));
    const jinjaPath = join(dir, "chat_template.jinja");
    const jsonPath = join(dir, "chat_template.json");
    if (existsSync(jinjaPath)) {
      chatTemplates = { ...chatTemplates, default: await readFile(jinjaPath, "utf8") };
    } else if (existsSync(jsonPath)) {
      const fromJson = chatTemplatesFromField(
        (await readJsonFile<Record<string, unknown>>(jsonPath))["chat_template"],
        jsonPath,
      );
      chatTemplates = { ...chatTemplates, ...fromJson };
    }

    return new PreTrainedTokenizer(tokenizerJson, config, {
      specialTokensMap,
      fallbackTokenIds: fallback,
      ...options,
      chatTemplates: { ...chatTemplates, ...options.chatTemplates },
      source: options.source ?? dir,
    });
  },
};
