export type { Engine, EngineInfo, EngineOptions, KernelPluginInfo } from "./engine.js";
export { defaultEngine, engineInfo, initEngine, shutdownEngine } from "./engine.js";
export {
  builtinKernelPlugins,
  cpuSegmentSumPlugin,
  type Numeric,
  scatterAdd,
  wasmCpuFallbackPlugin,
  wasmMatMulPlugin,
  wasmSegmentSumPlugin,
} from "./kernels/index.js";
export type { KernelPlugin, KernelPluginSpec, KernelSpec } from "./plugin.js";
export { defineKernelPlugin, replaceKernel } from "./plugin.js";
export { tf } from "./tf.js";
export type { WasmStatus } from "./wasm-threads.js";
export { MAX_WASM_THREADS, wasmStatus } from "./wasm-threads.js";
export {
  activeNativeAddon,
  activeNativeGemm,
  NATIVE_BLAS_PLUGIN,
  type NativeAddon,
  type NativeBlasOptions,
  type NativeBlasStatus,
  nativeBlasPlugin,
  nativeBlasStatus,
} from "./kernels/native-blas.js";
export type {
  NativeGemmExports,
  NativeGemmInfo,
  NativeGemmOptions,
  NativeGemmPackOptions,
  NativeIsa,
  NativePackedB,
} from "./kernels/native-gemm.js";
