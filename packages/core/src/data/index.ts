/**
 * The data pipeline: load JSON / JSONL(.gz) datasets with provenance, normalise TRL's formats
 * (standard/conversational; explicit/implicit preference, prompt-completion, language modelling,
 * Anthropic HH-RLHF transcripts), tokenise with chat templates in token space, truncate, collate
 * DPO / reward / SFT batches with length-derived masks, and iterate seeded, resumable batches. Unpaired
 * preference rows (KTO) and the unpairing of pairs live in `unpaired.ts`.
 * @module
 */
export * from "./types.js";
export { type BadRowOptions, type DataReport, type DroppedRow, droppedCount, formatDataReport } from "./report.js";
export * from "./lines.js";
export * from "./load.js";
export * from "./formats.js";
export { IDENTICAL_PAIR_REASON, sameCompletion } from "./identical.js";
export * from "./hh-rlhf.js";
export * from "./tokenize.js";
export { encodeLimited } from "./encode-limited.js";
export { specialPrefixIds } from "./row-encoder.js";
export * from "./truncate.js";
export * from "./collate.js";
export * from "./sampling.js";
export * from "./pipeline.js";
export * from "./unpaired.js";
