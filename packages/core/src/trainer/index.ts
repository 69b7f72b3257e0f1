/**
 * The shared training loop and its config defaults.
 * @module
 */
export * from "./args.js";
export * from "./trainer.js";
export * from "./batch-source.js";
export * from "./gradient-hook.js";
export * from "./finite-guard.js";
