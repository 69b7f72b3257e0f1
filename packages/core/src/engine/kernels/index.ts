/**
 * prefkit's built-in kernels, each packaged as a {@link KernelPlugin}.
 * @module
 */
import type { KernelPlugin } from "../plugin.js";
import { wasmCpuFallbackPlugin } from "./cpu-fallback.js";
import { cpuSegmentSumPlugin, wasmSegmentSumPlugin } from "./segment-sum.js";
import { wasmMatMulPlugin } from "./wasm-matmul.js";

export { wasmCpuFallbackPlugin } from "./cpu-fallback.js";
export { inPlaceWriteCount, markWrittenInPlace } from "./cpu-data.js";
export { cpuSegmentSumPlugin, type Numeric, scatterAdd, wasmSegmentSumPlugin } from "./segment-sum.js";
export { wasmMatMulPlugin } from "./wasm-matmul.js";

/** Fresh instances of every built-in kernel plugin. */
export function builtinKernelPlugins(): KernelPlugin[] {
  return [wasmMatMulPlugin(), wasmSegmentSumPlugin(), wasmCpuFallbackPlugin(), cpuSegmentSumPlugin()];
}
export {
  activeNativeAddon,
  activeNativeGemm,
  NATIVE_BLAS_PLUGIN,
  type NativeAddon,
  type NativeBlasOptions,
  type NativeBlasStatus,
  nativeBlasPlugin,
  nativeBlasStatus,
} from "./native-blas.js";
export type {
  NativeGemmExports,
  NativeGemmInfo,
  NativeGemmOptions,
  NativeGemmPackOptions,
  NativeIsa,
  NativePackedB,
} from "./native-gemm.js";
