/**
 * PEFT adapter directories: `adapter_config.json` and `adapter_model.safetensors`, as PEFT's
 * `save_pretrained` writes them and `PeftModel.from_pretrained` reads them.
 * @module
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, tf } from "@prefkit/core";
import { assertFiniteTensors } from "../io/hfDirectory.js";
import { readJsonFile, writeJsonAtomic } from "../io/json.js";
import { readSafetensors, type TensorInput, type TensorRecord, writeSafetensors } from "../io/safetensors/index.js";
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_SAFETENSORS_NAME,
  fromPeftConfigJson,
  type LoraConfig,
  type ResolvedLoraConfig,
  toPeftConfigJson,
} from "./config.js";
import type { GetPeftModelOptions } from "./injection.js";

/** Options of {@link PeftModel.fromPretrained}. */
export interface PeftFromPretrainedOptions extends GetPeftModelOptions {
  /** PEFT's `is_trainable`: load the adapter trainable (to continue training). Default false (inference). */
  isTrainable?: boolean;
}

/** Options of {@link PeftModel.savePretrained}. */
export interface PeftSaveOptions {
  /** Overrides `base_model_name_or_path` in `adapter_config.json`. */
  baseModelNameOrPath?: string | null;
}

/** An adapter directory as read from disk. */
export interface AdapterDirectory {
  /** `adapter_config.json`, as a {@link LoraConfig}. */
  config: LoraConfig;
  /** `adapter_model.safetensors`'s tensors by PEFT key. */
  tensors: Map<string, TensorRecord>;
  /** Path of `adapter_model.safetensors`, for messages. */
  weightsFile: string;
}

/** The `adapter_config.json` content for `config`, with `options.baseModelNameOrPath` when given. */
export function adapterConfigJson(config: ResolvedLoraConfig, options: PeftSaveOptions = {}): Record<string, unknown> {
  const written = { ...config };
  if (options.baseModelNameOrPath !== undefined) written.baseModelNameOrPath = options.baseModelNameOrPath;
  return toPeftConfigJson(written, config.targetModules);
}

/**
 * Write `tensors` (float32, metadata `format: pt`) and `configJson` into `dir`, each file atomically.
 * @throws CheckpointError when a weight is not finite (before anything is written) or `dir` cannot be written.
 */
export async function writeAdapterDirectory(
  dir: string,
  tensors: ReadonlyMap<string, tf.Variable>,
  configJson: Record<string, unknown>,
): Promise<void> {
  const inputs = new Map<string, TensorInput>();
  for (const [k, v] of tensors) {
    inputs.set(k, { shape: v.shape, data: (await v.data()) as Float32Array, dtype: "F32" });
  }
  assertFiniteTensors(inputs, join(dir, ADAPTER_SAFETENSORS_NAME));
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, ADAPTER_SAFETENSORS_NAME), inputs, { format: "pt" });
  // PEFT's LoraConfig types lora_dropout as a float (written 0.0)
  await writeJsonAtomic(join(dir, ADAPTER_CONFIG_NAME), configJson, { floatFields: ["lora_dropout"] });
}

/**
 * Read an adapter directory written by PEFT or by prefkit.
 * @throws ConfigError for an `adapter_config.json` prefkit cannot honour (naming the field).
 * @throws CheckpointError for unreadable files.
 */
export async function readAdapterDirectory(dir: string): Promise<AdapterDirectory> {
  const configFile = join(dir, ADAPTER_CONFIG_NAME);
  const config = fromPeftConfigJson(await readJsonFile(configFile, "config"), configFile);
  const weightsFile = join(dir, ADAPTER_SAFETENSORS_NAME);
  const { tensors } = await readSafetensors(weightsFile);
  return { config, tensors, weightsFile };
}

/**
 * Assign `tensors` (as read from `adapter_model.safetensors`) to the adapter variables with the same PEFT
 * key, after checking that they hold exactly those keys, each with its shape.
 * @throws CheckpointError naming `file` and the tensor for a missing, unexpected or mis-shaped tensor,
 *   before any variable is changed.
 */
export function assignAdapterTensors(
  variables: ReadonlyMap<string, tf.Variable>,
  tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
  file: string,
): void {
  for (const key of tensors.keys()) {
    if (!variables.has(key)) {
      throw new CheckpointError(
        "unexpected tensor: no LoRA layer or modulesToSave module of this model has that name",
        { file, tensor: key },
      );
    }
  }
  for (const [key, v] of variables) {
    const t = tensors.get(key);
    if (!t) throw new CheckpointError("missing tensor", { file, tensor: key });
    if (t.shape.join(",") !== v.shape.join(",")) {
      throw new CheckpointError(`shape [${t.shape}] does not match the model's [${v.shape}]`, { file, tensor: key });
    }
  }
  for (const [key, v] of variables) {
    const t = tensors.get(key)!;
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, "float32")));
  }
}
