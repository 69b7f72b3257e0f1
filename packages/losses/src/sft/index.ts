export { defaultSFTConfig, resolveSFTConfig, SFT_DEFAULTS, type SFTConfig, validateSFTConfig } from "./config.js";
export { nllLoss } from "./loss.js";
export { type SFTRun, type SFTTrainerOptions, sftRun } from "./method.js";
export { CompletionTask, collateCompletions, type SFTTrainerBatch } from "./task.js";
export { SFTTrainer } from "./trainer.js";
