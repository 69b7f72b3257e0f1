// The AVX2/FMA GEMV kernel (gemv.h): blocks of 4 weight rows against up to 2 rows of X at a time (16 ymm
// registers), one accumulator per (row of X, row of W) over 8-wide slices of k (the tail masked), then a
// fixed add tree per accumulator.
#include "gemv.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "transpose_avx2.h"

namespace prefkit {
namespace gemm {
namespace {

constexpr int kNr = 4, kMr = 2;

// Lane j of the result: the sum of the 8 lanes of acc[j], the same tree for every j.
PREFKIT_AVX2 inline __m128 Sum4(const __m256 (&acc)[kNr]) {
  const __m256 ab = _mm256_hadd_ps(acc[0], acc[1]);
  const __m256 cd = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 all = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps(all, 1));
}

template <int MR>
PREFKIT_AVX2 void Block(int64_t k, const float* x, int64_t ldx, const float* const (&w)[kNr], float beta, float* y,
                        int64_t ldy, int rows) {
  __m256 acc[MR][kNr];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < kNr; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 wv[kNr];
    for (int j = 0; j < kNr; j++) wv[j] = _mm256_loadu_ps(w[j] + p);
    for (int i = 0; i < MR; i++) {
      const __m256 xv = _mm256_loadu_ps(x + i * ldx + p);
      for (int j = 0; j < kNr; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (p < k) {
    alignas(32) int lanes[8];
    for (int l = 0; l < 8; l++) lanes[l] = p + l < k ? -1 : 0;
    const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    __m256 wv[kNr];
    for (int j = 0; j < kNr; j++) wv[j] = _mm256_maskload_ps(w[j] + p, mask);
    for (int i = 0; i < MR; i++) {
      const __m256 xv = _mm256_maskload_ps(x + i * ldx + p, mask);
      for (int j = 0; j < kNr; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++) {
    alignas(16) float sums[kNr];
    _mm_store_ps(sums, Sum4(acc[i]));
    float* out = y + i * ldy;
    for (int j = 0; j < rows; j++) out[j] = beta == 0.0f ? sums[j] : sums[j] + beta * out[j];
  }
}

}  // namespace

PREFKIT_AVX2 void GemvF32Avx2(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx,
                              const float* w, int64_t ldw, float beta, float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; n += kNr) {
    const int rows = static_cast<int>(n1 - n < kNr ? n1 - n : kNr);
    const float* wr[kNr];
    for (int j = 0; j < kNr; j++) wr[j] = w + (n + (j < rows ? j : 0)) * ldw;
    int64_t i = 0;
    for (; i + kMr <= m; i += kMr) Block<kMr>(k, x + i * ldx, ldx, wr, beta, y + i * ldy + n, ldy, rows);
    if (i < m) Block<1>(k, x + i * ldx, ldx, wr, beta, y + i * ldy + n, ldy, rows);
  }
}

}  // namespace gemm
}  // namespace prefkit
#endif
