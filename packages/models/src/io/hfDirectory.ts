/**
 * Writing a Hugging Face model directory, as transformers' `save_pretrained` does, so that
 * `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` load it.
 * @module
 */
import { copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { CheckpointError, ConfigError } from "@prefkit/core";
import { SAFETENSORS_WEIGHTS_NAME } from "./checkpoint.js";
import {
  CONFIG_NAME,
  GENERATION_CONFIG_NAME,
  type GenerationConfig,
  type PretrainedConfig,
  validateGenerationConfig,
  validateModelConfig,
} from "./config.js";
import { writeJsonAtomic } from "./json.js";
import { type TensorInput, type TensorInputs, writeSafetensors } from "./safetensors.js";
import { temporarySibling } from "./temporary.js";

/** Tokenizer files copied by {@link saveHfDirectory} when present in the source directory. */
export const TOKENIZER_FILE_NAMES: readonly string[] = Object.freeze([
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
]);

/** What {@link saveHfDirectory} writes. */
export interface SaveHfDirectoryOptions {
  /** The model config, written as `config.json` (unknown fields included). */
  config: PretrainedConfig;
  /** The weights, written as `model.safetensors` with HF tensor names. */
  weights: TensorInputs;
  /** Written as `generation_config.json` when given. */
  generationConfig?: GenerationConfig;
  /** Directory to copy the tokenizer files ({@link TOKENIZER_FILE_NAMES}) from; missing ones are skipped. */
  tokenizerFilesFrom?: string;
  /** Extra safetensors `__metadata__`; `format: "pt"` is always set (transformers requires it). */
  metadata?: Record<string, string>;
}

const TIED_HEAD = "lm_head.weight";
const EMBEDDING = "model.embed_tokens.weight";

function sameTensor(a: TensorInput, b: TensorInput): boolean {
  if (a.data === b.data) return true;
  if (a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

/**
 * With tied embeddings transformers stores only the embedding; drop an identical `lm_head.weight`.
 * A different one means the config and the weights disagree.
 */
function dropTiedHead(weights: TensorInputs, config: PretrainedConfig, file: string): Map<string, TensorInput> {
  const map = new Map<string, TensorInput>(
    weights instanceof Map ? weights : Object.entries(weights as Record<string, TensorInput>),
  );
  const head = map.get(TIED_HEAD);
  const embedding = map.get(EMBEDDING);
  if (config.tie_word_embeddings && head !== undefined) {
    if (embedding === undefined || !sameTensor(head, embedding)) {
      throw new ConfigError(`tie_word_embeddings is true but ${TIED_HEAD} differs from ${EMBEDDING}`, {
        file,
        field: "tie_word_embeddings",
      });
    }
    map.delete(TIED_HEAD);
  }
  return map;
}

async function exists(path: string): Promise<"file" | "dir" | undefined> {
  try {
    return (await stat(path)).isDirectory() ? "dir" : "file";
  } catch {
    return undefined;
  }
}

/**
 * Save a model as a Hugging Face directory: `config.json` (indent 2, sorted keys),
 * `model.safetensors` (`__metadata__.format = "pt"`), `generation_config.json` if given, and the
 * tokenizer files copied from `tokenizerFilesFrom`.
 *
 * Everything is written into a temporary directory next to `dir`, which then replaces `dir`:
 * readers never see a half-written model. An existing `dir` is moved aside, the new one renamed in,
 * and the old one deleted (its other files, if any, are not kept). If the final rename fails the
 * old directory is put back. With `tie_word_embeddings: true`, `lm_head.weight` is left out, as
 * transformers does.
 * @param dir - the model directory to create or replace.
 * @param options - config, weights and optional extras.
 * @throws ConfigError if the config or generation config is invalid (nothing is written).
 * @throws CheckpointError if the weights are invalid or the directory cannot be written.
 */
export async function saveHfDirectory(dir: string, options: SaveHfDirectoryOptions): Promise<void> {
  const target = resolve(dir);
  validateModelConfig(options.config, join(target, CONFIG_NAME));
  if (options.generationConfig !== undefined) {
    validateGenerationConfig(options.generationConfig, join(target, GENERATION_CONFIG_NAME));
  }
  const weights = dropTiedHead(options.weights, options.config, join(target, CONFIG_NAME));
  if ((await exists(target)) === "file") {
    throw new CheckpointError("exists and is not a directory", { file: target });
  }
  if (options.tokenizerFilesFrom !== undefined && (await exists(options.tokenizerFilesFrom)) !== "dir") {
    throw new CheckpointError("tokenizer source is not a directory", { file: options.tokenizerFilesFrom });
  }

  await mkdir(dirname(target), { recursive: true });
  const staging = temporarySibling(target, "tmp");
  try {
    await mkdir(staging);
    await writeJsonAtomic(join(staging, CONFIG_NAME), options.config);
    await writeSafetensors(join(staging, SAFETENSORS_WEIGHTS_NAME), weights, { ...options.metadata, format: "pt" });
    if (options.generationConfig !== undefined) {
      await writeJsonAtomic(join(staging, GENERATION_CONFIG_NAME), options.generationConfig);
    }
    if (options.tokenizerFilesFrom !== undefined) {
      for (const name of TOKENIZER_FILE_NAMES) {
        const source = join(options.tokenizerFilesFrom, name);
        if ((await exists(source)) === "file") await copyFile(source, join(staging, name));
      }
    }
    await replaceDirectory(staging, target);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    if (e instanceof CheckpointError || e instanceof ConfigError) throw e;
    throw new CheckpointError(
      `cannot save: ${e instanceof Error ? e.message : String(e)}`,
      { file: target },
      { cause: e },
    );
  }
}

/** Move `staging` to `target`, replacing an existing `target` directory; restores it on failure. */
async function replaceDirectory(staging: string, target: string): Promise<void> {
  if ((await exists(target)) === undefined) {
    await rename(staging, target);
    return;
  }
  const old = temporarySibling(target, "old");
  await rename(target, old);
  try {
    await rename(staging, target);
  } catch (e) {
    await rename(old, target);
    throw e;
  }
  await rm(old, { recursive: true, force: true });
}
