/**
 * Training checkpoints: crash-safe `checkpoint-N/` directories with model, optimizer,
 * schedule, RNG and trainer state, plus rotation and discovery.
 * @module
 */
export * from "./atomic.js";
export * from "./output-dir.js";
export * from "./safetensors.js";
export * from "./training-checkpoint.js";
