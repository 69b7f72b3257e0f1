/**
 * What every model class shares to load from and save to a Hugging Face model directory: the backend
 * switch, `config.json` with its family adapter, and the `save_pretrained` layout.
 * @module
 */
import { join } from "node:path";
import { ConfigError, EngineError, tf } from "@prefkit/core";
import { checkpointFloatDtype, loadCheckpointWeights } from "../io/checkpoint.js";
import { CONFIG_NAME, type GenerationConfig, type PretrainedConfig, readModelConfig } from "../io/config/index.js";
import { saveHfDirectory } from "../io/hfDirectory.js";
import type { SafetensorsDtype, SafetensorsFile, TensorInput } from "../io/safetensors/index.js";
import { adapterFor, type ModelAdapter } from "./adapters/index.js";
import type { DecoderConfig } from "./config.js";
import type { ModelDtype } from "./model-weights.js";

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

/** The `dtype` option of `fromPretrained`: a {@link ModelDtype}, or `"auto"` to follow `config.json`. */
export type LoadDtype = ModelDtype | "auto";

const MODEL_DTYPES: readonly ModelDtype[] = ["float32", "bfloat16", "float16"];
const CHECKPOINT_DTYPE: Partial<Record<SafetensorsDtype, ModelDtype>> = {
  F32: "float32",
  F64: "float32",
  BF16: "bfloat16",
  F16: "float16",
};

/**
 * The dtype to load `dir` in: `requested` itself, float32 when it is undefined, and for `"auto"` what
 * transformers' `torch_dtype="auto"` picks: `config.json`'s `torch_dtype` (or the newer `dtype` field), else
 * the dtype of the checkpoint's first floating tensor (F64 loads as float32).
 * @throws ConfigError (one line, naming the option or the config field) for a `dtype` that is not one of
 *   the four, or for `"auto"` over a `torch_dtype` prefkit cannot hold (float64, int8, float8, …).
 */
export async function resolveLoadDtype(
  requested: unknown,
  config: PretrainedConfig,
  configFile: string,
  dir: string,
): Promise<ModelDtype> {
  if (requested === undefined) return "float32";
  if ((MODEL_DTYPES as readonly unknown[]).includes(requested)) return requested as ModelDtype;
  if (requested !== "auto") {
    throw new ConfigError(`must be "float32", "bfloat16", "float16" or "auto", got ${JSON.stringify(requested)}`, {
      field: "dtype",
    });
  }
  const field = config.torch_dtype != null ? "torch_dtype" : config["dtype"] != null ? "dtype" : undefined;
  if (field === undefined) {
    const first = await checkpointFloatDtype(dir);
    return (first !== undefined ? CHECKPOINT_DTYPE[first] : undefined) ?? "float32";
  }
  const declared = config[field];
  const name = typeof declared === "string" ? declared.replace(/^torch\./, "") : undefined;
  if (name === undefined || !(MODEL_DTYPES as readonly string[]).includes(name)) {
    throw new ConfigError(
      `${JSON.stringify(declared)} is not a dtype prefkit can load (float32, bfloat16, float16), so dtype "auto" ` +
        "cannot follow it: pass dtype explicitly",
      { file: configFile, field },
    );
  }
  return name as ModelDtype;
}

/**
 * The weights of `dir` in the dtype `requested` resolves to (see {@link resolveLoadDtype}): float32 records,
 * or, for a 16-bit dtype, floating tensors kept in 16 bits as they are read, one at a time.
 * @throws ConfigError for a bad `dtype`; CheckpointError for unreadable weights.
 */
export async function readPretrainedWeights(
  dir: string,
  parts: Pick<PretrainedConfigParts, "config" | "configFile">,
  requested: unknown,
): Promise<{ dtype: ModelDtype; checkpoint: SafetensorsFile }> {
  const dtype = await resolveLoadDtype(requested, parts.config, parts.configFile, dir);
  const checkpoint = await loadCheckpointWeights(dir, dtype === "float32" ? {} : { halfPrecision: dtype });
  return { dtype, checkpoint };
}

/** What {@link savePretrainedDirectory} writes. */
export interface PretrainedDirectoryParts {
  /** `config.json`; its `torch_dtype` is set from `torchDtype`. */
  config: PretrainedConfig;
  /** The weights under their HF names, each with the dtype to write it in (see `ModelWeights.tensorsForSave`). */
  tensors: Map<string, TensorInput>;
  /** `torch_dtype` written to `config.json`. */
  torchDtype: ModelDtype;
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
  await saveHfDirectory(dir, {
    config: { ...parts.config, torch_dtype: parts.torchDtype },
    weights: parts.tensors,
    ...(parts.generationConfig !== undefined ? { generationConfig: parts.generationConfig } : {}),
    ...(parts.tokenizerFilesFrom !== undefined ? { tokenizerFilesFrom: parts.tokenizerFilesFrom } : {}),
  });
}
