/* prefkit's engine ABI: the GEMM and the thread pool of @prefkit/core's native addon, for other addons
 * (the fused decoder of @prefkit/models) to use instead of building their own, so that a process has
 * one pool, one ISA dispatch and one GEMM, the one `engineInfo()` reports.
 *
 * Core's addon exports it as `engineAbi`: a napi_external, type-tagged with PREFKIT_ENGINE_ABI_TAG,
 * around a static prefkit_engine_abi that lives as long as the process. A consumer checks the tag,
 * that `version` equals the PREFKIT_ENGINE_ABI_VERSION it was built against, and that `size` covers
 * the struct it knows; later versions of the same major only append members.
 *
 * Plain C: no C++ types, no exceptions across the boundary; callbacks take a context pointer.
 * Matrices are row-major; transposes are flags (cblas_sgemm's row-major form). */
#ifndef PREFKIT_ENGINE_ABI_H_
#define PREFKIT_ENGINE_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: adds gemm (operand and compute types), gemm_packed_t (a packed B used transposed), repack_b, unpack_b,
 *    packed_b_bytes and bf16_path, for 16-bit weights and bf16 compute in the fused decoder; and gemv
 *    (a few rows times a weight read in place), for the native decode step. */
#define PREFKIT_ENGINE_ABI_VERSION 2u

/* napi_type_tag of the `engineAbi` external (napi_type_tag { lower, upper }). */
#define PREFKIT_ENGINE_ABI_TAG_LOWER 0x707265666b697431ull
#define PREFKIT_ENGINE_ABI_TAG_UPPER 0x656e67696e656162ull

/* Storage or compute type of an operand: fp32, or bf16 (the upper 16 bits of an fp32, in a uint16). */
enum { PREFKIT_F32 = 0, PREFKIT_BF16 = 1 };

/* op(X): a row-major matrix at `data` with leading dimension `ld`, transposed when `trans` != 0. */
typedef struct prefkit_operand {
  const void* data;
  int32_t type; /* PREFKIT_F32 or PREFKIT_BF16 */
  int32_t trans;
  int64_t ld;
} prefkit_operand;

/* A B operand packed once into the microkernel's panels (opaque). */
typedef struct prefkit_packed_b prefkit_packed_b;

typedef struct prefkit_engine_abi {
  uint32_t version; /* PREFKIT_ENGINE_ABI_VERSION */
  uint32_t size;    /* sizeof(prefkit_engine_abi) of the exporting build */

  /* C = alpha op(A) op(B) + beta C (fp32), on the process's route (built-in GEMM on the active ISA,
   * or OpenBLAS with PREFKIT_BLAS=openblas). beta == 0: C is only written. Threaded over the pool,
   * single-threaded inside a task of parallel_gemms. */
  void (*sgemm)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

  /* op(B) (k x n) packed for products in `compute` (PREFKIT_F32 or PREFKIT_BF16) on the active ISA;
   * NULL when out of memory. Free with free_packed_b. */
  prefkit_packed_b* (*pack_b)(const prefkit_operand* b, int64_t k, int64_t n, int32_t compute);
  void (*free_packed_b)(prefkit_packed_b* packed);
  /* C = alpha op(A) B + beta C with a packed B (m x k times k x n). */
  void (*gemm_packed)(int64_t m, const prefkit_operand* a, const prefkit_packed_b* b, float alpha, float beta,
                      float* c, int64_t ldc);

  /* fn(ctx, begin, end) over [0, n) in at most threads() contiguous chunks whose edges are multiples of
   * `align`, each of at least `min_per_chunk` elements; returns when all are done. */
  void (*parallel_for)(size_t n, size_t min_per_chunk, size_t align, void (*fn)(void* ctx, size_t begin, size_t end),
                       void* ctx);
  /* fn(ctx, task, worker) for every task in [0, tasks), for tasks that call sgemm themselves (each call
   * then runs single-threaded, so results do not depend on the thread count); `worker` < threads()
   * only selects per-worker scratch. */
  void (*parallel_gemms)(int tasks, void (*fn)(void* ctx, int task, int worker), void* ctx);
  /* Threads of the pool, the caller included (>= 1): the engine's `threads`. */
  int (*threads)(void);

  /* ---- version 2 ---- */
  /* C = alpha op(A) op(B) + beta C (m x k times k x n) with operands of either type. compute PREFKIT_BF16:
   * both operands rounded to bf16 (nearest even), exact products summed in fp32 (built in); PREFKIT_F32:
   * the process's route, as sgemm. */
  void (*gemm)(int64_t m, int64_t n, int64_t k, float alpha, const prefkit_operand* a, const prefkit_operand* b,
               float beta, float* c, int64_t ldc, int32_t compute);
  /* C = alpha op(A) Bᵀ + beta C with a packed B (k x n) used transposed: op(A) is m x n, C is m x k. Its
   * panels are derived per block from the same pack (a weight packed for y = x Wᵀ also gives dx = dy W). */
  void (*gemm_packed_t)(int64_t m, const prefkit_operand* a, const prefkit_packed_b* b, float alpha, float beta,
                        float* c, int64_t ldc);
  /* Packs op(B) again into `packed` without allocating (same k x n; a source of the type it was packed
   * from): a trainable weight's per-step copy. 0 when the source does not fit the pack, else 1. */
  int (*repack_b)(prefkit_packed_b* packed, const prefkit_operand* b);
  /* Writes the packed op(B) (k x n) back into `out` (PREFKIT_F32 or PREFKIT_BF16 elements, row-major with
   * leading dimension ld, transposed when trans != 0: the layout it was packed from). Exact for a pack of
   * bf16 values (a 16-bit pack, or any pack for bf16 products); 0 when `type` cannot hold them exactly. */
  int (*unpack_b)(const prefkit_packed_b* packed, void* out, int32_t type, int32_t trans, int64_t ld);
  /* Bytes of memory a pack holds. */
  int64_t (*packed_b_bytes)(const prefkit_packed_b* packed);
  /* One line naming how bf16 products run on the active ISA (e.g. "vdpbf16ps (avx512bf16)"). */
  const char* (*bf16_path)(void);
  /* Y = X W^T + beta Y for a few rows: X (m x k, leading dimension ldx) times a weight W (n x k)
   * in its stored row-major [out, in] layout (Hugging Face's), read in place and once for all m rows
   * (m = 1 is a GEMV): the projections of a decoding step, where streaming the weight is the cost.
   * beta == 0: Y is only written. On the active ISA's GEMV kernel (never OpenBLAS); every element of Y
   * gets the same operations whatever m and the thread count. Threaded over n on the pool,
   * single-threaded inside a task of parallel_gemms or parallel_for. Returns 0, or -1 (doing nothing)
   * for a `w` this version does not take: w->type must be PREFKIT_F32 and w->trans 0. A PREFKIT_BF16
   * weight (16-bit frozen storage) is the planned extension of this entry. */
  int (*gemv)(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const prefkit_operand* w, float beta,
              float* y, int64_t ldy);
} prefkit_engine_abi;

#ifdef __cplusplus
}
#endif

#endif /* PREFKIT_ENGINE_ABI_H_ */
