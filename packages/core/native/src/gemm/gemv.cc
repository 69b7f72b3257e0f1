// The GEMV front door (gemv.h): the dispatch by instruction set, the split over the pool, and the plain
// C++ kernel, which is the reference the tests hold the others to and the path of CPUs without AVX2.
#include "gemv.h"

#include <algorithm>

#include "pool.h"
#include "prefkit/row_tasks.h"

namespace prefkit {
namespace gemm {

void GemvF32Scalar(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx, const float* w,
                   int64_t ldw, float beta, float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; n++) {
    const float* wr = w + n * ldw;
    for (int64_t i = 0; i < m; i++) {
      const float* xr = x + i * ldx;
      float acc = 0.0f;
      for (int64_t p = 0; p < k; p++) acc += xr[p] * wr[p];
      float* out = y + i * ldy + n;
      *out = beta == 0.0f ? acc : acc + beta * *out;
    }
  }
}

GemvKernelF32 GemvKernel(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (isa) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512:
      return GemvF32Avx512;
    case Isa::kAvx2:
      return GemvF32Avx2;
    case Isa::kScalar:
      break;
  }
#else
  (void)isa;
#endif
  return GemvF32Scalar;
}

const char* GemvKernelName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512:
      return "avx512 4x4";
    case Isa::kAvx2:
      return "avx2 2x4";
    case Isa::kScalar:
      break;
  }
  return "scalar";
}

void Gemv(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float beta,
          float* y, int64_t ldy, Isa isa) {
  if (m <= 0 || n <= 0) return;
  const GemvKernelF32 kernel = GemvKernel(isa);
  // Tasks of RowTaskSize rows (at least ~64 KB of weight, whole blocks of 16 rows: the kernels' widest),
  // handed out to whichever thread is free. Which thread computes a row does not change its bits.
  const int64_t threads = InParallelRegion() ? 1 : Threads();
  const int64_t minimum = std::max<int64_t>(16, 16384 / std::max<int64_t>(1, k));
  const int64_t chunk = RowTaskSize(n, minimum, threads, 16);
  const int64_t tasks = (n + chunk - 1) / chunk;
  if (threads <= 1 || tasks <= 1) {
    kernel(m, 0, n, k, x, ldx, w, ldw, beta, y, ldy);
    return;
  }
  Run(static_cast<int>(tasks), [&](int task, int) {
    const int64_t begin = task * chunk;
    kernel(m, begin, std::min(n, begin + chunk), k, x, ldx, w, ldw, beta, y, ldy);
  });
}

void Gemv(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float beta,
          float* y, int64_t ldy) {
  Gemv(m, n, k, x, ldx, w, ldw, beta, y, ldy, ActiveIsa());
}

}  // namespace gemm
}  // namespace prefkit
