// The AVX2/FMA microkernel: a 6x16 tile (12 ymm accumulators, 2 B vectors, 1 broadcast of A).
// Compiled with per-function target attributes, so the rest of the addon stays baseline x86-64.
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace prefkit {
namespace gemm {
namespace {

#define PREFKIT_AVX2 __attribute__((target("avx2,fma")))

constexpr int kMr = 6, kVecs = 2, kNr = 8 * kVecs;

PREFKIT_AVX2 inline __m256i ColumnMask(int count) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lanes);
}

PREFKIT_AVX2 void KernelF32Avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                                float alpha, float beta) {
  __m256 acc[kMr][kVecs];
  for (int i = 0; i < kMr; i++)
    for (int v = 0; v < kVecs; v++) acc[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; p++) {
    __m256 bv[kVecs];
    for (int v = 0; v < kVecs; v++) bv[v] = _mm256_load_ps(b + v * 8);
    for (int i = 0; i < kMr; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      for (int v = 0; v < kVecs; v++) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMr;
    b += kNr;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  for (int i = 0; i < m; i++) {
    float* row = c + i * ldc;
    for (int v = 0; v < kVecs; v++) {
      const int left = n - v * 8;
      if (left <= 0) break;
      const __m256 t = _mm256_mul_ps(va, acc[i][v]);
      if (left >= 8) {
        _mm256_storeu_ps(row + v * 8, beta == 0.0f ? t : _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + v * 8), t));
      } else {
        const __m256i mask = ColumnMask(left);
        const __m256 r = beta == 0.0f ? t : _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + v * 8, mask), t);
        _mm256_maskstore_ps(row + v * 8, mask, r);
      }
    }
  }
}

}  // namespace

const KernelSet& Avx2Kernels() {
  static const KernelSet set = [] {
    KernelSet s;
    s.isa = Isa::kAvx2;
    s.f32 = KernelF32Avx2;
    s.mr = kMr;
    s.nr = kNr;
    s.kc = s.kc_bf16 = 512;
    s.mc = 144;
    s.nc = 4096;
    s.pack_f32 = PackPanelF32Avx2;
    return s;
  }();
  return set;
}

}  // namespace gemm
}  // namespace prefkit
#endif
