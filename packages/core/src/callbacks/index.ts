/**
 * The callback contract's runtime: the event bus, trainer state/control helpers and the
 * default flow callback.
 * @module
 */
export * from "./state.js";
export * from "./handler.js";
export * from "./default-flow.js";
