export { loadedRows, type PreferenceSourceOptions, type PreferenceSources, preferenceSources } from "./data.js";
export {
  type RefCacheKeys,
  RefLogProbCache,
  type RefLogProbCacheOptions,
  type ReferenceSums,
  refCacheDir,
  type Split,
} from "./ref-cache.js";
export {
  completionLogProbSums,
  preferenceDatasetFingerprint,
  type RefLogProbs,
  type RefLogProbsFile,
  type ReferenceKind,
  type ReferenceSource,
  readRefLogProbs,
  referenceLogProbSums,
  refLogProbsPath,
  resolveReference,
  weightsFingerprint,
  writeRefLogProbs,
} from "./reference.js";
export { collatePreferences, type PreferenceBatch, PreferenceTask, type PreferenceTaskOptions } from "./task.js";
export { ldTokenWeights, weightedLogpSums, wpoPairWeights } from "./token-weights.js";
export {
  type ReferenceFreeConfig,
  type ReferenceFreeRun,
  type ReferenceFreeTrainerOptions,
  referenceFreeRun,
} from "./reference-free-run.js";
