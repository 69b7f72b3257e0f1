/**
 * The `score` head of a sequence classifier: how many labels it has, its seeded initialisation, and the
 * config transformers writes for a classifier (`architectures`, `id2label`/`label2id`, `pad_token_id`).
 * @module
 */
import { ConfigError, type Rng } from "@prefkit/core";
import type { PretrainedConfig } from "../io/config/index.js";
import type { TensorRecord } from "../io/safetensors/index.js";

const FAMILY_CLASS: Record<string, string> = { llama: "Llama", mistral: "Mistral", qwen2: "Qwen2", qwen3: "Qwen3" };

/** The transformers class name for a config, e.g. `LlamaForSequenceClassification`. */
function sequenceClassificationArchitecture(config: PretrainedConfig): string {
  const arch = config.architectures?.[0];
  if (typeof arch === "string" && /For[A-Za-z]+$/.test(arch))
    return arch.replace(/For[A-Za-z]+$/, "ForSequenceClassification");
  const family =
    FAMILY_CLASS[config.model_type] ?? config.model_type.charAt(0).toUpperCase() + config.model_type.slice(1);
  return `${family}ForSequenceClassification`;
}

/**
 * Outputs of the head: `requested`, else the config's `num_labels` or the size of its `id2label`, else 2
 * (transformers' default).
 * @throws ConfigError when that is not a positive integer.
 */
export function labelCount(config: PretrainedConfig, requested: number | undefined, file?: string): number {
  const id2label = config["id2label"];
  const fromConfig =
    typeof config["num_labels"] === "number"
      ? (config["num_labels"] as number)
      : id2label !== null && typeof id2label === "object"
        ? Object.keys(id2label).length
        : undefined;
  const n = requested ?? fromConfig ?? 2;
  if (!Number.isInteger(n) || n < 1) {
    throw new ConfigError(`expected a positive integer, got ${JSON.stringify(n)}`, { file, field: "numLabels" });
  }
  return n;
}

/** The config transformers' `save_pretrained` writes for a sequence classifier (`id2label`/`label2id` carry `num_labels`). */
export function classifierConfig(
  config: PretrainedConfig,
  numLabels: number,
  padTokenId: number | undefined,
): PretrainedConfig {
  const { num_labels: _dropped, ...rest } = config;
  const out: PretrainedConfig = {
    ...(rest as PretrainedConfig),
    architectures: [sequenceClassificationArchitecture(config)],
  };
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  const old = config["id2label"] as Record<string, string> | undefined;
  for (let i = 0; i < numLabels; i++) {
    const name =
      old !== undefined && Object.keys(old).length === numLabels ? (old[String(i)] ?? `LABEL_${i}`) : `LABEL_${i}`;
    id2label[String(i)] = name;
    label2id[name] = i;
  }
  out["id2label"] = id2label;
  out["label2id"] = label2id;
  if (padTokenId !== undefined) out.pad_token_id = padTokenId;
  return out;
}

/** A fresh head `[numLabels, hidden]`, N(0, std²) from `rng` (HF's `_init_weights`). */
export function headInit(numLabels: number, hidden: number, std: number, rng: Rng): TensorRecord {
  const data = new Float32Array(numLabels * hidden);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
  return { dtype: "F32", shape: [numLabels, hidden], data };
}
