// The fused decoder's GEMM and thread pool: @prefkit/core's, reached through the engine ABI
// (core's include/prefkit/engine_abi.h) that the addon is handed once at load (attachEngine), so the
// process keeps one pool, one ISA dispatch and the GEMM that `engineInfo()` reports.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prefkit/engine_abi.h"

namespace prefkit {
namespace decoder {
namespace engine {

// Takes `abi` when its version and size fit this build; else false with a one-line reason.
bool Attach(const prefkit_engine_abi* abi, const char** error);
// Whether Attach succeeded (the decoder's entry points refuse to run before).
bool Attached();
// The attached ABI (only after Attach succeeded).
const prefkit_engine_abi& Abi();

enum Trans : bool { kNoTrans = false, kTrans = true };

// C = alpha op(A) op(B) + beta C, row-major (cblas_sgemm's row-major form).
inline void Sgemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  Abi().sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C = alpha op(A) op(B) + beta C with fp32 operands, the products in `compute` (PREFKIT_F32: Sgemm;
// PREFKIT_BF16: operands rounded to bf16, exact products summed in fp32).
inline void Gemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int32_t compute) {
  if (compute == PREFKIT_F32) {
    Sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const prefkit_operand oa = {a, PREFKIT_F32, trans_a, lda}, ob = {b, PREFKIT_F32, trans_b, ldb};
  Abi().gemm(m, n, k, alpha, &oa, &ob, beta, c, ldc, compute);
}

// C = alpha A W + beta C with a packed W (k x n; A m x k, row-major with leading dimension lda), or with
// `transposed` its transpose (A m x n, C m x k): one pack serves y = x·Wᵀ and dx = dy·W.
inline void GemmPacked(int64_t m, const float* a, int64_t lda, const prefkit_packed_b* w, bool transposed,
                       float alpha, float beta, float* c, int64_t ldc) {
  const prefkit_operand oa = {a, PREFKIT_F32, 0, lda};
  if (transposed) Abi().gemm_packed_t(m, &oa, w, alpha, beta, c, ldc);
  else Abi().gemm_packed(m, &oa, w, alpha, beta, c, ldc);
}

// Y [m, n] = X [m, k] W^T + beta Y with W an fp32 [n, k] weight read in place (ld k; X's ld k, Y's ld n),
// on the decoding kernel (the engine ABI's gemv), split over the pool by rows of W.
inline void Gemv(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, float beta, float* y,
                 int64_t ldy) {
  const prefkit_operand op = {w, PREFKIT_F32, 0, k};
  Abi().gemv(m, n, k, x, ldx, &op, beta, y, ldy);
}

// Threads of the pool, the caller included.
inline int Threads() { return Abi().threads(); }

// fn(begin, end) over [0, n) in contiguous chunks of at least `minimum` elements, on the pool.
template <typename F>
void ParallelFor(size_t n, const F& fn, size_t minimum = 4096) {
  Abi().parallel_for(
      n, minimum, 1, [](void* ctx, size_t begin, size_t end) { (*static_cast<const F*>(ctx))(begin, end); },
      const_cast<F*>(&fn));
}

// fn(task, worker) for every task, for tasks that call Sgemm themselves (single-threaded there).
template <typename F>
void ParallelGemms(int tasks, const F& fn) {
  Abi().parallel_gemms(
      tasks, [](void* ctx, int task, int worker) { (*static_cast<const F*>(ctx))(task, worker); },
      const_cast<F*>(&fn));
}

}  // namespace engine
}  // namespace decoder
}  // namespace prefkit
