/**
 * The adapter registry: `model_type` → {@link ModelAdapter}.
 * @module
 */
import { ConfigError } from "@prefkit/core";
import type { PretrainedConfig } from "../../io/index.js";
import type { ModelAdapter } from "./common.js";
import { llamaAdapter } from "./llama.js";
import { mistralAdapter } from "./mistral.js";
import { qwen2Adapter } from "./qwen2.js";
import { qwen3Adapter } from "./qwen3.js";

export type { FamilyFlags, ModelAdapter } from "./common.js";
export { parseRopeScaling, readDecoderConfig, sanitizeCommon } from "./common.js";
export { llamaAdapter, mistralAdapter, qwen2Adapter, qwen3Adapter };

const registry = new Map<string, ModelAdapter>(
  [llamaAdapter, qwen2Adapter, qwen3Adapter, mistralAdapter].map((a) => [a.modelType, a]),
);

/** Register (or replace) the adapter for `adapter.modelType`, e.g. to support a new family. */
export function registerAdapter(adapter: ModelAdapter): void {
  registry.set(adapter.modelType, adapter);
}

/** The `model_type` values that have an adapter. */
export function supportedModelTypes(): string[] {
  return [...registry.keys()];
}

/**
 * The adapter for `config.model_type`.
 * @throws ConfigError naming `model_type` and listing the supported types.
 */
export function adapterFor(config: Pick<PretrainedConfig, "model_type">, file?: string): ModelAdapter {
  const adapter = registry.get(config.model_type);
  if (!adapter) {
    throw new ConfigError(
      `unsupported model_type ${JSON.stringify(config.model_type)}; supported: ${supportedModelTypes().join(", ")}`,
      { file, field: "model_type" },
    );
  }
  return adapter;
}
