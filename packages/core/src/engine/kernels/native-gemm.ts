/**
 * Types of the native addon's own GEMM (`packages/core/native/src/gemm`): a BLIS-style packed,
 * cache-blocked GEMM with one microkernel per instruction set (AVX-512 with AVX512_BF16, AVX-512,
 * AVX2/FMA, plain C++), chosen at run time from the CPU's features. It runs every product of the fast
 * path (the kernel plugin's matmuls, the fused decoder); no system BLAS is needed.
 *
 * Two environment variables, read when the addon loads, steer it:
 * - `PREFKIT_ISA=avx512bf16|avx512|avx2|scalar` forces a microkernel set (the addon refuses to load,
 *   with one line saying why, when the CPU lacks it);
 * - `PREFKIT_BLAS=openblas` sends fp32 products to OpenBLAS instead, loaded at run time from
 *   `libopenblas.so.0` (Debian: `libopenblas0-pthread`), for comparisons.
 * @module
 */

/** An instruction-set path of the native GEMM, fastest first. */
export type NativeIsa = "avx512bf16" | "avx512" | "avx2" | "scalar";

/** What runs the native addon's products (`gemmInfo()`); {@link EngineInfo} carries it as `nativeGemm`. */
export interface NativeGemmInfo {
  /** The microkernel set in use: the CPU's best, or `PREFKIT_ISA`. */
  isa: NativeIsa;
  /** The best set this CPU supports. */
  detectedIsa: NativeIsa;
  /** Every set this CPU supports, fastest first. */
  isas: NativeIsa[];
  /** `"builtin"`, or `"openblas"` when `PREFKIT_BLAS=openblas` sends fp32 products to OpenBLAS. */
  blas: "builtin" | "openblas";
  /** Threads of the addon's pool (GEMMs and the fused decoder's loops): the engine's `threads`. */
  threads: number;
  /** One line naming it all, e.g. `"prefkit GEMM avx512bf16 (fp32 8x48, bf16 8x48), 2 threads"`. */
  config: string;
  /**
   * How bf16 products run: `"vdpbf16ps (avx512bf16)"`, or on a CPU without AVX512_BF16 the fp32 kernel of
   * its set on operands rounded to bf16 (e.g. `"avx2 fp32 kernel on bf16-rounded operands (no AVX512_BF16)"`).
   */
  bf16: string;
}

/** A B operand packed once by `gemmPack` for any number of products (e.g. a frozen weight). */
export type NativePackedB = { readonly __nativePackedB: unique symbol };

/**
 * One call of the addon's `gemm`: `C = alpha·op(A)·op(B) + beta·C` on row-major matrices, for `batch`
 * strided entries. A and B are Float32Arrays, or Uint16Arrays holding bfloat16 (the upper halves of
 * float32s); B may be a {@link NativePackedB}. Every range is bounds-checked.
 */
export interface NativeGemmOptions {
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  a: Float32Array | Uint16Array;
  b: Float32Array | Uint16Array | NativePackedB;
  c: Float32Array;
  /** A is stored [k, m] (default false). */
  transA?: boolean;
  /**
   * B is stored [n, k] (default false). With a {@link NativePackedB}: use the pack transposed (it was packed
   * as a k × n op(B) of another product, e.g. Wᵀ for y = x·Wᵀ, and gives W for dx = dy·W).
   */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0: C is only written (NaNs in it do not propagate). */
  beta?: number;
  /** Leading dimensions (elements between rows as stored); default the dense ones. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Element offsets of the first entry; default 0. */
  aOffset?: number;
  bOffset?: number;
  cOffset?: number;
  /** Entries of a strided batch (default 1) and the element strides between them (A's and B's may be 0). */
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** `"bfloat16"`: operands rounded to bf16 (nearest even), exact products summed in fp32. Default `"float32"`. */
  dtype?: "float32" | "bfloat16";
  /** Run the built-in GEMM on this set (tests); refused when the CPU lacks it. */
  isa?: NativeIsa;
  /** Override the process's choice of implementation (benchmarks); `"openblas"` loads it on first use. */
  blas?: "builtin" | "openblas";
}

/** Options of the addon's `gemmPack`: op(B) (k × n) packed for products in `dtype` on `isa`. */
export interface NativeGemmPackOptions {
  b: Float32Array | Uint16Array;
  k: number;
  n: number;
  transB?: boolean;
  ldb?: number;
  bOffset?: number;
  dtype?: "float32" | "bfloat16";
  isa?: NativeIsa;
}

/** The native GEMM's exports (see `packages/core/native/src/gemm/gemm_napi.cc`). */
export interface NativeGemmExports {
  gemm(options: NativeGemmOptions): void;
  gemmPack(options: NativeGemmPackOptions): NativePackedB;
  /** Pack a new B (same shape, element type and options) into an existing pack, without allocating. */
  gemmRepack(packed: NativePackedB, options: NativeGemmPackOptions): void;
  /** Size of a packed B: 2 bytes per element when it or its products are bf16, else 4 (plus edge padding). */
  gemmPackedInfo(packed: NativePackedB): { k: number; n: number; bytes: number };
  gemmInfo(): NativeGemmInfo;
}
