/**
 * `LoraPlugin`: LoRA as a core `Plugin`, registered like any other plugin.
 * @module
 */
import { type CausalLM, ConfigError, type Plugin, type PluginContext } from "@prefkit/core";
import type { LoraConfig } from "./config.js";
import type { GetPeftModelOptions, LoraBaseModel } from "./injection.js";
import { getPeftModel, PeftModel } from "./model.js";

/** Injection token under which {@link LoraPlugin} registers its {@link LoraConfig}. */
export const LORA_CONFIG: unique symbol = Symbol("prefkit.LORA_CONFIG");

/**
 * Wraps the run's model with {@link getPeftModel} (through `PluginContext.wrapModel`), so the trainer trains only the adapters
 * and, with no reference model given, uses the same model with adapters off as the DPO/PPO reference.
 *
 * ```ts no-run
 * const trainer = new DPOTrainer({ model, args, trainDataset, plugins: [new LoraPlugin({ r: 16, loraAlpha: 32, targetModules: "all-linear" })] });
 * ```
 */
export class LoraPlugin implements Plugin {
  /** Plugin name: `"lora"`. */
  readonly name = "lora";
  /** The adapter config. */
  readonly config: LoraConfig;
  /** Seed and dropout mode passed to {@link getPeftModel}. */
  readonly options: GetPeftModelOptions;
  /** The wrapped model, once `wrapModel` ran. */
  model: PeftModel | undefined;

  /** @param config PEFT's `LoraConfig`; @param options seed of the init and dropout masks. */
  constructor(config: LoraConfig, options: GetPeftModelOptions = {}) {
    this.config = config;
    this.options = options;
  }

  /** Provide the config under {@link LORA_CONFIG} and wrap the run's model (see {@link LoraPlugin.wrapModel}). */
  register(context: PluginContext): void {
    context.provide(LORA_CONFIG, this.config);
    context.wrapModel((model) => this.wrapModel(model));
  }

  /**
   * Wrap `model` with LoRA adapters (a model that already is a {@link PeftModel} is returned as is).
   * @throws ConfigError when the model has no `replaceLinear` seam.
   */
  wrapModel(model: CausalLM): CausalLM {
    if (model instanceof PeftModel) {
      this.model = model;
      return model as unknown as CausalLM;
    }
    const candidate = model as unknown as Partial<LoraBaseModel>;
    if (typeof candidate.replaceLinear !== "function" || typeof candidate.linearModules !== "function") {
      throw new ConfigError("the LoRA plugin needs a prefkit model (with linearModules() and replaceLinear())", {
        field: "model",
      });
    }
    this.model = getPeftModel(model as unknown as LoraBaseModel, this.config, this.options);
    return this.model as unknown as CausalLM;
  }
}
