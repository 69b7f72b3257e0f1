export * from "./model.js";
export * from "./loss.js";
export * from "./tokenizer.js";
