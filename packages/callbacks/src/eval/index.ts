/**
 * Evaluation like the model cards: preference accuracy and margins, log-prob histograms, and
 * sample generations.
 * @module
 */
export * from "./generate.js";
export * from "./preferences.js";
export * from "./logprob-histogram.js";
