export {
  type CompletionDatasetInput,
  type PreferenceDatasetInput,
  type ResolvedDataset,
  resolveCompletionDataset,
  resolvePreferenceDataset,
  resolveUnpairedDataset,
  type UnpairedDatasetInput,
} from "./datasets.js";
export { type IndexedRow, LazyBatchSource, type LazyBatchSourceOptions, trainAndEvalSources } from "./lazy-source.js";
export { commonRunParts, ensureBuiltinLosses, resolvePadTokenId, type TrainerCommonOptions } from "./options.js";
export { groupTokenMetrics, type TokenMetricMasks, tokenMetrics, tokenMetricsFromStats } from "./token-metrics.js";
