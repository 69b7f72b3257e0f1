// The AVX2/FMA GEMV kernel (gemv.h): blocks of 4 weight rows against up to 2 rows of X at a time (16 ymm
// registers), one accumulator per (row of X, row of W) over 8-wide slices of k (the tail masked), then a
// fixed add tree per accumulator. A single row of X (batch-1 decoding) takes blocks of 12 weight rows
// instead, for more memory streams in flight, with the same operations per element (the same bits).
#include "gemv.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "transpose_avx2.h"

namespace prefkit {
namespace gemm {
namespace {

constexpr int kNr = 4, kMr = 2, kWideNr = 12;

// Lane j of the result: the sum of the 8 lanes of acc[j] (j < 4), the same tree for every j.
PREFKIT_AVX2 inline __m128 Sum4(const __m256* acc) {
  const __m256 ab = _mm256_hadd_ps(acc[0], acc[1]);
  const __m256 cd = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 all = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps(all, 1));
}

// The mask of the k tail's lanes from p on.
PREFKIT_AVX2 inline __m256i TailMask(int64_t p, int64_t k) {
  alignas(32) int lanes[8];
  for (int l = 0; l < 8; l++) lanes[l] = p + l < k ? -1 : 0;
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
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
    const __m256i mask = TailMask(p, k);
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

// One row of X against NR consecutive rows of W (stride ldw), each accumulator and add tree as Block's.
template <int NR>
PREFKIT_AVX2 void WideBlock(int64_t k, const float* x, const float* w, int64_t ldw, float beta, float* y) {
  __m256 acc[NR];
  for (int j = 0; j < NR; j++) acc[j] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    const __m256 xv = _mm256_loadu_ps(x + p);
    for (int j = 0; j < NR; j++) acc[j] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + j * ldw + p), acc[j]);
  }
  if (p < k) {
    const __m256i mask = TailMask(p, k);
    const __m256 xv = _mm256_maskload_ps(x + p, mask);
    for (int j = 0; j < NR; j++) acc[j] = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w + j * ldw + p, mask), acc[j]);
  }
  for (int g = 0; g < NR; g += kNr) {
    alignas(16) float sums[kNr];
    _mm_store_ps(sums, Sum4(acc + g));
    for (int j = 0; j < kNr; j++) y[g + j] = beta == 0.0f ? sums[j] : sums[j] + beta * y[g + j];
  }
}

}  // namespace

PREFKIT_AVX2 void GemvF32Avx2(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx,
                              const float* w, int64_t ldw, float beta, float* y, int64_t ldy) {
  if (m == 1) {
    for (; n0 + kWideNr <= n1; n0 += kWideNr) WideBlock<kWideNr>(k, x, w + n0 * ldw, ldw, beta, y + n0);
    for (; n0 + kNr <= n1; n0 += kNr) WideBlock<kNr>(k, x, w + n0 * ldw, ldw, beta, y + n0);
  }
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
