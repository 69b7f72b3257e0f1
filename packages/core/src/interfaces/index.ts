export * from "./model.js";
export * from "./loss.js";
