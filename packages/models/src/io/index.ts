/**
 * Checkpoint I/O: safetensors (read, write, validate), sharded checkpoints, `config.json` /
 * `generation_config.json`, HF model directories, and float16/bfloat16 conversion.
 * @module
 */
export * from "./checkpoint.js";
export * from "./config/index.js";
export * from "./halfPrecision.js";
export * from "./hfDirectory.js";
export * from "./json.js";
export * from "./safetensors/index.js";
