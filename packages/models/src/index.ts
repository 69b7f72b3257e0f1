/**
 * `@prefkit/models`: Hugging Face checkpoints (config.json + safetensors) in and out, one decoder
 * with per-family adapters (Llama, Qwen2, Qwen3, Mistral, SmolLM), tokenizers and chat templates,
 * generation, and the LoRA and AMP plugins.
 * @packageDocumentation
 */
export * from "./io/index.js";
export * from "./tokenizer/index.js";
export * from "./modeling/index.js";
export * from "./generation/index.js";
export * from "./lora/index.js";
export * from "./amp/index.js";
