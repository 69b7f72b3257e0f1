/**
 * The generic training loop, its gradient step and its config defaults.
 * @module
 */
export * from "./args.js";
export * from "./trainer.js";
export * from "./gradient-step.js";
export * from "./batch-source.js";
export * from "./finite-guard.js";
