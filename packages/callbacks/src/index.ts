/**
 * `@prefkit/callbacks`: progress bar, JSONL/CSV loggers, early stopping, NaN guard, training
 * reports with charts, model cards, evaluation helpers and the `prefkit` CLI.
 * @packageDocumentation
 */
export * from "./metrics-file.js";
export * from "./progress.js";
export * from "./jsonl-logger.js";
export * from "./csv-logger.js";
export * from "./early-stopping.js";
export * from "./nan-guard.js";
export * from "./report/index.js";
export * from "./model-card.js";
export * from "./eval/index.js";
export * from "./cli/index.js";
