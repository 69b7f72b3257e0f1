/**
 * An optional native kernel plugin for the `cpu` backend: `BatchMatMul` and `_FusedMatMul`
 * run the addon's own GEMM (`native-gemm.ts`) on the cpu backend's Float32Arrays, through a small
 * N-API addon in `packages/core/native` (built by `npm ci`, or `npm run build:native`, with g++ and
 * make; no BLAS package). The plugin also brings the typed-array elementwise kernels of
 * `cpu-fast.ts`, the next bottleneck once matmuls are fast.
 *
 * The addon is optional. When `native/build/Release/prefkit_native.node` is missing or fails
 * to load, the plugin reports itself unavailable with the reason, and the engine keeps the
 * stock kernels: an install without a compiler works unchanged, only slower.
 *
 * Transposed operands are passed to sgemm as flags (no explicit transposes). Batches loop
 * over sgemm with broadcast batch offsets; an unbatched, untransposed-A product folds the
 * batch into rows for one large call.
 * @module
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { IS_NODE } from "../host.js";
import { defineKernelPlugin, type KernelPlugin } from "../plugin.js";
import { tf } from "../tf.js";
import { type CpuBackendLike, kernelFloat32Values as float32Values } from "./cpu-data.js";
import { cpuFastKernels } from "./cpu-fast.js";
import type { NativeGemmExports, NativeGemmInfo } from "./native-gemm.js";
import { broadcastBatchIndex, matMulShape, sizeOf } from "./shape.js";

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The addon's exports (see `packages/core/native/src/prefkit_native.cc`). */
export interface NativeAddon extends NativeGemmExports {
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    aOffsets: Float64Array,
    b: Float32Array,
    bOffsets: Float64Array,
    c: Float32Array,
  ): void;
  /** Threads of the addon's pool: its GEMMs and the fused decoder's loops (and OpenBLAS's, when it runs). */
  setNumThreads(threads: number): void;
  getNumThreads(): number;
  /** One line naming the GEMM that runs (`gemmInfo().config`). */
  config(): string;
  /**
   * One `torch.optim.AdamW` step over equal-length Float32Arrays, updating `param`, `m` and `v`
   * in place (`grad` is only read, scaled by `gradScale` first); `step` is the variable's 1-based
   * step count. Throws a RangeError naming the argument when lengths differ or arrays overlap.
   * See `native/src/optim.cc`. Optional: an addon built before it existed lacks it.
   */
  adamw?: (
    param: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
    gradScale: number,
  ) => void;
  /** Σ a[i]² accumulated in double, for gradient norms (see `native/src/optim.cc`). */
  sumSquares?: (a: Float32Array) => number;
  /**
   * prefkit's GEMM and thread pool for other addons (@prefkit/models' fused decoder): an external over
   * the versioned C struct of `native/include/prefkit/engine_abi.h`. Optional: an addon built before it
   * existed lacks it.
   */
  engineAbi?: object;
}

/** What {@link nativeBlasStatus} reports. */
export interface NativeBlasStatus {
  /** Whether the addon loaded. */
  available: boolean;
  /** Why it is unavailable (missing file, load error); undefined when available. */
  reason?: string;
  /** The GEMM that runs, e.g. `"prefkit GEMM avx512bf16 (fp32 8x48, bf16 8x48), 2 threads"`, when available. */
  config?: string;
  /** Threads of the addon's pool, when available. */
  threads?: number;
  /** The GEMM's instruction set and BLAS, when available. */
  gemm?: NativeGemmInfo;
  /** Path the addon is (or would be) loaded from. */
  path: string;
}

/** The addon of the native-blas plugin the engine configured last, if any. */
let activeAddon: NativeAddon | undefined;

/**
 * The native addon when the `native-blas` plugin is active on the current backend (`cpu`), else
 * undefined. Fused native paths (the decoder's token log-probs, AdamW) check this first and fall
 * back to tfjs ops when it is undefined.
 * @internal
 */
export function activeNativeAddon(): NativeAddon | undefined {
  return activeAddon !== undefined && tf.getBackend() === "cpu" ? activeAddon : undefined;
}

/** Name of the plugin returned by {@link nativeBlasPlugin}. */
export const NATIVE_BLAS_PLUGIN = "native-blas";

const ADDON_RELATIVE = "../../../native/build/Release/prefkit_native.node";

interface LoadResult {
  addon?: NativeAddon;
  reason?: string;
  path: string;
}

const loaded = new Map<string, LoadResult>();

/** The default addon path: `packages/core/native/build/Release/prefkit_native.node`. */
function defaultAddonPath(): string {
  return IS_NODE ? fileURLToPath(new URL(ADDON_RELATIVE, import.meta.url)) : ADDON_RELATIVE;
}

function load(path = defaultAddonPath()): LoadResult {
  const cached = loaded.get(path);
  if (cached !== undefined) return cached;
  let result: LoadResult;
  if (!IS_NODE) {
    result = { reason: "not running under Node.js", path };
  } else {
    try {
      const require = createRequire(import.meta.url);
      const addon = require(path) as NativeAddon;
      if (typeof addon.sgemm !== "function") throw new Error("the addon exports no sgemm");
      if (typeof addon.gemmInfo !== "function") {
        throw new Error("the addon predates its built-in GEMM (rebuild it: `npm run build:native`)");
      }
      result = { addon, path };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const reason =
        e.code === "MODULE_NOT_FOUND"
          ? `${path} is not built (run \`npm run build:native\`; needs g++ and make)`
          : `${path} failed to load: ${e.message}`;
      result = { reason, path };
    }
  }
  loaded.set(path, result);
  return result;
}

/**
 * Whether the native BLAS addon loads here, and why not. Loads it on first call; never throws.
 * @param addonPath - Addon to check; defaults to `packages/core/native/build/Release/prefkit_native.node`.
 */
export function nativeBlasStatus(addonPath?: string): NativeBlasStatus {
  const { addon, reason, path } = load(addonPath);
  if (addon === undefined) return { available: false, reason, path };
  return { available: true, config: addon.config(), threads: addon.getNumThreads(), gemm: addon.gemmInfo(), path };
}

/** Options of {@link nativeBlasPlugin}. */
export interface NativeBlasOptions {
  /** Path of the `.node` addon; defaults to `packages/core/native/build/Release/prefkit_native.node`. */
  addonPath?: string;
}

/**
 * What runs the products of the active native addon (see {@link activeNativeAddon}), for
 * `engineInfo()`; undefined when the native plugin is not active.
 * @internal
 */
export function activeNativeGemm(): NativeGemmInfo | undefined {
  return activeNativeAddon()?.gemmInfo();
}

/**
 * op(a)·op(b) with sgemm, or undefined when the stock kernel must run (non-float32 data,
 * rank < 2, mismatched inner dims, empty output: the stock kernel keeps its error messages).
 */
function nativeMatMul(
  addon: NativeAddon,
  backend: CpuBackendLike,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): tf.TensorInfo | undefined {
  const dims = matMulShape(a, b, transposeA, transposeB);
  if (dims === undefined || dims.m * dims.n === 0) return undefined;
  const { m, k, n, outerA, outerB, outOuter } = dims;
  const av = float32Values(backend, a);
  const bv = float32Values(backend, b);
  if (av === undefined || bv === undefined) return undefined;
  const outShape = [...outOuter, m, n];
  const batch = sizeOf(outOuter);
  const out = new Float32Array(batch * m * n);
  const batchA = sizeOf(outerA);
  const batchB = sizeOf(outerB);
  if (batchB === 1 && !transposeA && batchA === batch) {
    // b is shared and a's batches are contiguous [m, k] blocks: one call with batch·m rows.
    addon.sgemm(false, transposeB, batch * m, n, k, av, new Float64Array(1), bv, new Float64Array(1), out);
  } else {
    const aOffsets = new Float64Array(batch);
    const bOffsets = new Float64Array(batch);
    for (let i = 0; i < batch; i++) {
      aOffsets[i] = broadcastBatchIndex(outOuter, outerA, i) * m * k;
      bOffsets[i] = broadcastBatchIndex(outOuter, outerB, i) * k * n;
    }
    addon.sgemm(transposeA, transposeB, m, n, k, av, aOffsets, bv, bOffsets, out);
  }
  return backend.makeTensorInfo(outShape, "float32", out);
}

function stockOrThrow(stock: tf.KernelConfig | undefined, kernelName: string): tf.KernelConfig {
  if (stock === undefined) throw new Error(`${kernelName}: the cpu backend has no stock kernel to fall back to`);
  return stock;
}

function batchMatMulKernel(addon: NativeAddon, stock: tf.KernelConfig | undefined): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const backend = args.backend as unknown as CpuBackendLike;
    const out = nativeMatMul(addon, backend, a, b, transposeA, transposeB);
    return out ?? stockOrThrow(stock, tf.BatchMatMul).kernelFunc(args);
  };
}

/**
 * `_FusedMatMul`: the product natively, then the bias added in place when it is a plain
 * row vector of length n (or a scalar); any other bias goes through the cpu `Add` kernel.
 * An activation (other than none/"linear") runs the stock kernel.
 */
function fusedMatMulKernel(addon: NativeAddon, stock: tf.KernelConfig | undefined): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b, bias } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
    const { transposeA, transposeB, activation } = args.attrs as {
      transposeA: boolean;
      transposeB: boolean;
      activation?: string;
    };
    const backend = args.backend as unknown as CpuBackendLike;
    const plain = activation === undefined || activation === "linear";
    const biasValues = bias === undefined ? undefined : float32Values(backend, bias);
    if (!plain || (bias !== undefined && biasValues === undefined)) {
      return stockOrThrow(stock, tf._FusedMatMul).kernelFunc(args);
    }
    const product = nativeMatMul(addon, backend, a, b, transposeA, transposeB);
    if (product === undefined) return stockOrThrow(stock, tf._FusedMatMul).kernelFunc(args);
    if (bias === undefined || biasValues === undefined) return product;
    const n = product.shape[product.shape.length - 1]!;
    const biasSize = sizeOf(bias.shape);
    const fitsInPlace =
      bias.shape.length <= product.shape.length && (biasSize === 1 || bias.shape[bias.shape.length - 1] === n);
    if (fitsInPlace && (biasSize === 1 || biasSize === n)) {
      // A scalar or row-vector bias: add it into the fresh product.
      const out = backend.data.get(product.dataId).values as Float32Array;
      if (biasSize === 1) {
        const v = biasValues[0]!;
        for (let i = 0; i < out.length; i++) out[i]! += v;
      } else {
        for (let row = 0; row < out.length; row += n) {
          for (let j = 0; j < n; j++) out[row + j]! += biasValues[j]!;
        }
      }
      return product;
    }
    const add = stockOrThrow(tf.getKernel(tf.Add, "cpu"), tf.Add);
    const out = add.kernelFunc({ inputs: { a: product, b: bias }, backend: args.backend, attrs: {} });
    backend.disposeIntermediateTensorInfo(product);
    return out;
  };
}

/**
 * The native BLAS kernel plugin for `cpu`: `BatchMatMul` and `_FusedMatMul` through the addon's
 * own GEMM (or OpenBLAS with `PREFKIT_BLAS=openblas`), plus tight typed-array `Add`, `Sub`,
 * `Multiply`, `RealDiv` (any broadcast), `Transpose` and `Exp` kernels, which otherwise dominate a
 * cpu step once matmuls are fast.
 *
 * Enable it with `initEngine({ backend: "cpu", plugins: [nativeBlasPlugin()] })`, or set
 * `PREFKIT_NATIVE=1`. When the addon is not built, the engine notes
 * `kernel plugin native-blas is not available: <reason>` and keeps the stock kernels.
 * The addon's threads follow the engine's `threads`.
 */
export function nativeBlasPlugin(options: NativeBlasOptions = {}): KernelPlugin {
  const path = options.addonPath;
  const addon = (): NativeAddon => {
    const { addon: a, reason } = load(path);
    if (a === undefined) throw new Error(`native-blas is unavailable: ${reason}`);
    return a;
  };
  const base = defineKernelPlugin({
    name: NATIVE_BLAS_PLUGIN,
    backend: "cpu",
    preferred: true,
    isAvailable: () => load(path).addon !== undefined,
    kernels: [
      { kernelName: tf.BatchMatMul, build: (stock) => ({ kernelFunc: batchMatMulKernel(addon(), stock) }) },
      { kernelName: tf._FusedMatMul, build: (stock) => ({ kernelFunc: fusedMatMulKernel(addon(), stock) }) },
      ...cpuFastKernels,
    ],
  });
  return {
    ...base,
    unregister: () => {
      if (activeAddon === load(path).addon) activeAddon = undefined;
      base.unregister();
    },
    unavailableReason: () => load(path).reason,
    configure: ({ threads }) => {
      const a = load(path).addon;
      if (a === undefined) return;
      activeAddon = a;
      if (a.getNumThreads() !== threads) a.setNumThreads(threads);
    },
  };
}
