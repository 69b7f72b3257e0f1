/**
 * Dependency injection: tokens, the per-run container, the loss registry and plugin helpers.
 * @module
 */
export * from "./tokens.js";
export * from "./loss-registry.js";
export * from "./container.js";
export * from "./plugins.js";
export * from "./composition.js";
