// The AVX-512 microkernels' shared tile store (fp32 and bf16 kernels accumulate into the same fp32
// tile of MR x 16*VECS). Internal linkage only: these functions carry AVX-512 target attributes and
// must never be merged with a baseline copy of the same inline function in another file.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

#define PREFKIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define PREFKIT_AVX512BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512dq,avx512vl")))

namespace prefkit {
namespace gemm {
namespace {

// C[i, :] = alpha * acc[i] + beta * C[i, :] for the first m rows and n columns of the tile.
template <int MR, int VECS>
PREFKIT_AVX512 inline void StoreTile(__m512 (&acc)[MR][VECS], float* c, int64_t ldc, int m, int n, float alpha,
                                     float beta) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  __mmask16 masks[VECS];
  for (int v = 0; v < VECS; v++) {
    const int left = n - v * 16;
    masks[v] = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                          : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1);
  }
  for (int i = 0; i < MR; i++) {
    if (i >= m) break;
    float* row = c + i * ldc;
    for (int v = 0; v < VECS; v++) {
      const __m512 t = _mm512_mul_ps(va, acc[i][v]);
      if (masks[v] == 0xFFFF) {
        _mm512_storeu_ps(row + v * 16, beta == 0.0f ? t : _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + v * 16), t));
      } else if (masks[v] != 0) {
        const __m512 r = beta == 0.0f ? t : _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(masks[v], row + v * 16), t);
        _mm512_mask_storeu_ps(row + v * 16, masks[v], r);
      }
    }
  }
}

}  // namespace
}  // namespace gemm
}  // namespace prefkit
#endif
