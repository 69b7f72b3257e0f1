/**
 * What every model class shares to load from and save to a Hugging Face model directory: the backend
 * switch, `config.json` with its family adapter, and the `save_pretrained` layout.
 * @module
 */
import { join } from "node:path";
import { EngineError, tf } from "@prefkit/core";
import { CONFIG_NAME, type GenerationConfig, type PretrainedConfig, readModelConfig } from "../io/config/index.js";
import { saveHfDirectory } from "../io/hfDirectory.js";
import type { SafetensorsDtype, TensorInput } from "../io/safetensors/index.js";
import { adapterFor, type ModelAdapter } from "./adapters/index.js";
import type { DecoderConfig } from "./config.js";

const TORCH_DTYPE: Record<string, string> = { F32: "float32", BF16: "bfloat16", F16: "float16" };

/**
 * Activate the TensorFlow.js `backend` first, when one is named and it is not already active.
 * @throws EngineError when it cannot be activated.
 */
export async function activateBackend(backend: string | undefined): Promise<void> {
  if (backend !== undefined && tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new EngineError(`could not activate the "${backend}" backend`, { field: "backend" });
  }
}

/** A model directory's `config.json`, the adapter of its family, and the decoder flags it derives. */
export interface PretrainedConfigParts {
  /** The validated config, family defaults filled in. */
  config: PretrainedConfig;
  /** Path of `config.json`, for messages. */
  configFile: string;
  /** The adapter for `config.model_type`. */
  adapter: ModelAdapter;
  /** The adapter's decoder flags for `config`. */
  decoderConfig: DecoderConfig;
}

/**
 * Read `config.json` of `dir` and resolve its family.
 * @throws ConfigError for an unsupported `model_type` or a bad config field.
 */
export async function readPretrainedConfig(dir: string): Promise<PretrainedConfigParts> {
  const config = await readModelConfig(dir);
  const configFile = join(dir, CONFIG_NAME);
  const adapter = adapterFor(config, configFile);
  return { config, configFile, adapter, decoderConfig: adapter.decoderConfig(config, configFile) };
}

/** What {@link savePretrainedDirectory} writes. */
export interface PretrainedDirectoryParts {
  /** `config.json`; its `torch_dtype` is set from `dtype`. */
  config: PretrainedConfig;
  /** The weights under their HF names, in file order. */
  weights: Iterable<readonly [string, tf.Variable]>;
  /** Storage dtype of `model.safetensors`. */
  dtype: Extract<SafetensorsDtype, "F32" | "BF16" | "F16">;
  /** `generation_config.json`, if the model has one. */
  generationConfig?: GenerationConfig | undefined;
  /** Directory to copy tokenizer files from, if any. */
  tokenizerFilesFrom?: string | undefined;
}

/**
 * Write `dir` as transformers' `save_pretrained` does (see `saveHfDirectory`).
 * @throws CheckpointError when a weight is not finite or `dir` cannot be written (naming the file).
 */
export async function savePretrainedDirectory(dir: string, parts: PretrainedDirectoryParts): Promise<void> {
  const weights = new Map<string, TensorInput>();
  for (const [name, v] of parts.weights) {
    weights.set(name, { shape: v.shape, data: (await v.data()) as Float32Array, dtype: parts.dtype });
  }
  await saveHfDirectory(dir, {
    config: { ...parts.config, torch_dtype: TORCH_DTYPE[parts.dtype]! },
    weights,
    ...(parts.generationConfig !== undefined ? { generationConfig: parts.generationConfig } : {}),
    ...(parts.tokenizerFilesFrom !== undefined ? { tokenizerFilesFrom: parts.tokenizerFilesFrom } : {}),
  });
}
