/**
 * The generic training loop, its gradient step and its config defaults.
 * @module
 */
export * from "./args.js";
export * from "./trainer.js";
export * from "./gradient-step.js";
export * from "./batch-source.js";
export * from "./finite-guard.js";
export * from "./parts.js";
export * from "./state-records.js";
export * from "./best-metric.js";
export * from "./evaluation.js";
export * from "./plan.js";
