/**
 * Optimizers, gradient clipping and learning-rate schedules.
 * @module
 */
export * from "./adamw.js";
export * from "./clip.js";
export * from "./schedules.js";
