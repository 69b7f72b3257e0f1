/**
 * Writing a Hugging Face model directory, as transformers' `save_pretrained` does, so that
 * `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` load it.
 * @module
 */
import { copyFile, mkdir, readdir, realpath, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CheckpointError, ConfigError } from "@prefkit/core";
import { SAFETENSORS_INDEX_NAME, SAFETENSORS_WEIGHTS_NAME } from "./checkpoint.js";
import {
  CONFIG_FLOAT_FIELDS,
  CONFIG_NAME,
  GENERATION_CONFIG_FLOAT_FIELDS,
  GENERATION_CONFIG_NAME,
  type GenerationConfig,
  type PretrainedConfig,
  validateGenerationConfig,
  validateModelConfig,
} from "./config/index.js";
import { writeJsonAtomic } from "./json.js";
import {
  checkTensorInputs,
  type SafetensorsDtype,
  type TensorInput,
  type TensorInputs,
  writeSafetensors,
} from "./safetensors/index.js";
import { replaceFileAtomically } from "./temporary.js";

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

/** The sharded-weights names transformers writes (`model-00001-of-00003.safetensors`). */
export const SHARD_FILE_PATTERN = /^model-\d{5}-of-\d{5}\.safetensors$/;

/**
 * Refuse weights holding NaN or ±Infinity: a diverged model must not reach disk under a name that looks
 * like a good one. A `Uint16Array` of data is read as the tensor's BF16 or F16 bit patterns.
 * @param tensors - name → tensor (data and dtype), as written.
 * @param file - the file they would go to, for the message.
 * @throws CheckpointError naming the file and the first non-finite tensor.
 */
export function assertFiniteTensors(
  tensors: Iterable<readonly [string, { data: ArrayLike<number>; dtype?: SafetensorsDtype | undefined }]>,
  file: string,
): void {
  for (const [name, t] of tensors) {
    const data = t.data;
    if (data instanceof Uint16Array) {
      // BF16 or F16 bit patterns: all exponent bits set is ±Infinity or NaN.
      const exponent = t.dtype === "F16" ? 0x7c00 : 0x7f80;
      for (let i = 0; i < data.length; i++) {
        if ((data[i]! & exponent) === exponent) {
          const what = (data[i]! & (t.dtype === "F16" ? 0x03ff : 0x007f)) !== 0 ? "NaN" : "Infinity";
          throw new CheckpointError(`holds ${what} at index ${i}: refusing to save non-finite weights`, {
            file,
            tensor: name,
          });
        }
      }
      continue;
    }
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new CheckpointError(`holds ${data[i]} at index ${i}: refusing to save non-finite weights`, {
          file,
          tensor: name,
        });
      }
    }
  }
}

/** Copy `source` to `dest` through a temporary sibling of `dest` (readers see the old file or the new one). */
async function copyFileAtomic(source: string, dest: string): Promise<void> {
  if ((await exists(dest)) === "file" && (await realpath(source)) === (await realpath(dest))) return;
  await replaceFileAtomically(dest, (tmp) => copyFile(source, tmp));
}

/**
 * Remove what an earlier save of ours left that the single `model.safetensors` just written makes stale:
 * `model.safetensors.index.json` and `model-0000i-of-0000n.safetensors` shards (as transformers'
 * `save_pretrained` removes shards it did not rewrite). Returns the removed names.
 */
async function removeStaleWeightFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (name !== SAFETENSORS_INDEX_NAME && !SHARD_FILE_PATTERN.test(name)) continue;
    if ((await exists(join(dir, name))) !== "file") continue;
    await rm(join(dir, name));
    removed.push(name);
  }
  return removed;
}

/**
 * Save a model as a Hugging Face directory, as transformers' `save_pretrained` does: `config.json` (indent 2,
 * sorted keys, float fields written as floats), `model.safetensors` (`__metadata__.format = "pt"`),
 * `generation_config.json` if given, and the tokenizer files ({@link TOKENIZER_FILE_NAMES}) copied from
 * `tokenizerFilesFrom`. With `tie_word_embeddings: true`, `lm_head.weight` is left out, as transformers does.
 *
 * Each file is written atomically (a temporary file in `dir`, then a rename), so a reader sees either the
 * old file or the new one. The only files removed are the ones this save makes stale: an earlier sharded
 * save's `model.safetensors.index.json` and `model-0000i-of-0000n.safetensors`. Nothing else in `dir` is
 * deleted or changed: saving into the directory the model was loaded from, or into a run directory with
 * checkpoints, keeps every other file.
 * @param dir - the model directory (created if missing).
 * @param options - config, weights and optional extras.
 * @throws ConfigError if the config or generation config is invalid (nothing is written).
 * @throws CheckpointError if a weight is not finite (nothing is written), `dir` is a file, or it cannot be written.
 */
export async function saveHfDirectory(dir: string, options: SaveHfDirectoryOptions): Promise<void> {
  const target = resolve(dir);
  validateModelConfig(options.config, join(target, CONFIG_NAME));
  if (options.generationConfig !== undefined) {
    validateGenerationConfig(options.generationConfig, join(target, GENERATION_CONFIG_NAME));
  }
  const weights = dropTiedHead(options.weights, options.config, join(target, CONFIG_NAME));
  const metadata = { ...options.metadata, format: "pt" };
  checkTensorInputs(weights, metadata, join(target, SAFETENSORS_WEIGHTS_NAME));
  assertFiniteTensors(weights, join(target, SAFETENSORS_WEIGHTS_NAME));
  if ((await exists(target)) === "file") {
    throw new CheckpointError("exists and is not a directory", { file: target });
  }
  if (options.tokenizerFilesFrom !== undefined && (await exists(options.tokenizerFilesFrom)) !== "dir") {
    throw new CheckpointError("tokenizer source is not a directory", { file: options.tokenizerFilesFrom });
  }
  try {
    await mkdir(target, { recursive: true });
    await writeSafetensors(join(target, SAFETENSORS_WEIGHTS_NAME), weights, metadata);
    await writeJsonAtomic(join(target, CONFIG_NAME), options.config, { floatFields: CONFIG_FLOAT_FIELDS });
    if (options.generationConfig !== undefined) {
      await writeJsonAtomic(join(target, GENERATION_CONFIG_NAME), options.generationConfig, {
        floatFields: GENERATION_CONFIG_FLOAT_FIELDS,
      });
    }
    if (options.tokenizerFilesFrom !== undefined) {
      for (const name of TOKENIZER_FILE_NAMES) {
        const source = join(options.tokenizerFilesFrom, name);
        if ((await exists(source)) === "file") await copyFileAtomic(source, join(target, name));
      }
    }
    await removeStaleWeightFiles(target);
  } catch (e) {
    if (e instanceof CheckpointError || e instanceof ConfigError) throw e;
    throw new CheckpointError(
      `cannot save: ${e instanceof Error ? e.message : String(e)}`,
      { file: target },
      { cause: e },
    );
  }
}
