export * from "./model.js";
export * from "./loss.js";
export * from "./tokenizer.js";
export * from "./trainer.js";
export * from "./callback.js";
export * from "./plugin.js";
export * from "./classifier.js";
