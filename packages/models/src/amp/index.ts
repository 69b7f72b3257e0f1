/**
 * AMP as TensorFlow.js allows it: 16-bit storage of frozen weights (`enableHalfPrecisionStorage`, over
 * modeling's `HalfPrecisionLinear`), `DynamicLossScaler` (torch `GradScaler` semantics) with its trainer hook `LossScalerHook` and `AmpPlugin`.
 * @module
 */
export * from "./loss-scaler.js";
export * from "./loss-scaler-hook.js";
export * from "./plugin.js";
export * from "./storage.js";
