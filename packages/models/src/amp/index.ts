/**
 * AMP as TensorFlow.js allows it: 16-bit storage of frozen weights (`enableHalfPrecisionStorage`,
 * `HalfPrecisionLinear`), `DynamicLossScaler` (torch `GradScaler` semantics) and `AmpPlugin`.
 * @module
 */
export * from "./loss-scaler.js";
export * from "./plugin.js";
export * from "./storage.js";
