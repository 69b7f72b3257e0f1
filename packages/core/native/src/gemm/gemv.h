// Products of a few rows by a weight in its stored layout, Y[m, n] = X[m, k] · W[n, k]^T + beta Y: the
// projections of a decoding step, where each weight is read once per token for every row of the batch
// (m = 1 is a GEMV; m up to 8 or so is a GEMM of small M). No packing: W is read in place, row-major
// [out, in] as Hugging Face stores it, so the cost is streaming the weight from memory.
//
// One kernel per instruction set (gemv_avx512.cc, gemv_avx2.cc, and the plain C++ reference in
// gemv.cc), each computing every element of Y with the same sequence of operations whatever m, the
// rows around it or the thread count, so results are bit-identical across batch sizes and splits.
#pragma once

#include <cstdint>

#include "isa.h"

namespace prefkit {
namespace gemm {

// Rows [n0, n1) of Y (columns of the product) for all m rows of X. beta == 0: Y is only written.
using GemvKernelF32 = void (*)(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx,
                               const float* w, int64_t ldw, float beta, float* y, int64_t ldy);

// The kernel of `isa` (which the CPU must support), and its name for reports ("avx512 4x4").
GemvKernelF32 GemvKernel(Isa isa);
const char* GemvKernelName(Isa isa);

// Y = X W^T + beta Y on `isa`, split over the pool's threads by rows of W (single-threaded inside a
// parallel region).
void Gemv(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float beta,
          float* y, int64_t ldy, Isa isa);
// The same on the active ISA.
void Gemv(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float beta,
          float* y, int64_t ldy);

void GemvF32Scalar(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx, const float* w,
                   int64_t ldw, float beta, float* y, int64_t ldy);
#if defined(__x86_64__) || defined(_M_X64)
void GemvF32Avx2(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx, const float* w,
                 int64_t ldw, float beta, float* y, int64_t ldy);
void GemvF32Avx512(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx, const float* w,
                   int64_t ldw, float beta, float* y, int64_t ldy);
#endif

}  // namespace gemm
}  // namespace prefkit
