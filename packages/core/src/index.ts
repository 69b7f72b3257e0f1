/**
 * `@prefkit/core`: the engine, DI wiring, interfaces, trainer loop, callbacks contract,
 * data pipeline, optimizers, schedules and checkpoints that every other prefkit package builds on.
 * @packageDocumentation
 */
import "reflect-metadata";

export * from "./engine/index.js";
export * from "./errors/index.js";
export * from "./interfaces/index.js";
export * from "./rng/index.js";
export * from "./di/index.js";
export * from "./callbacks/index.js";
export * from "./data/index.js";
export * from "./optim/index.js";
export * from "./checkpoint/index.js";
export * from "./trainer/index.js";
export * from "./ops/index.js";
