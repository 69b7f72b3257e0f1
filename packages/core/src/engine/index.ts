export type { Engine, EngineInfo, EngineOptions, KernelPluginInfo } from "./engine.js";
export { defaultEngine, engineInfo, initEngine, shutdownEngine } from "./engine.js";
export { hostEnv } from "./host.js";
export * from "./kernels/index.js";
export type { KernelPlugin, KernelPluginSpec, KernelSpec } from "./plugin.js";
export { defineKernelPlugin, replaceKernel } from "./plugin.js";
export { tf } from "./tf.js";
export type { WasmStatus } from "./wasm-threads.js";
export { MAX_WASM_THREADS, wasmStatus } from "./wasm-threads.js";
