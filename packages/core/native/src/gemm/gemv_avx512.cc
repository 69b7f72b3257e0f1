// The AVX-512 GEMV kernel (gemv.h): blocks of 4 weight rows against up to 4 rows of X at a time, one zmm
// accumulator per (row of X, row of W) over 16-wide slices of k (the tail masked), then a fixed add tree
// per accumulator. The weight block is read from memory once; further row groups of X find it in L1.
// A single row of X (batch-1 decoding) takes blocks of 16 weight rows instead: 16 streams in flight keep
// memory busier than 4 (about 1.4x the weight bandwidth of one core here), with the same operations per
// element, so the bits are those of the 4-row blocks.
#include "gemv.h"

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12 flags the undefined pass-through operand of its own masked intrinsics (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "avx512_tile.h"

namespace prefkit {
namespace gemm {
namespace {

constexpr int kNr = 4, kMr = 4, kWideNr = 16;

// Lane j of the result: the sum of the 16 lanes of acc[j] (j < 4), the same tree for every j.
PREFKIT_AVX512 inline __m128 Sum4(const __m512* acc) {
  __m256 h[kNr];
  for (int j = 0; j < kNr; j++) h[j] = _mm256_add_ps(_mm512_castps512_ps256(acc[j]), _mm512_extractf32x8_ps(acc[j], 1));
  const __m256 ab = _mm256_hadd_ps(h[0], h[1]);
  const __m256 cd = _mm256_hadd_ps(h[2], h[3]);
  const __m256 all = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps(all, 1));
}

// y[i][j] (+)= x[i] . w[j] for i < MR, j < rows. `ahead` (elements): prefetch the weight that far on,
// the next block's rows, so that memory keeps streaming while this block computes (0: no prefetch).
template <int MR>
PREFKIT_AVX512 void Block(int64_t k, const float* x, int64_t ldx, const float* const (&w)[kNr], float beta, float* y,
                          int64_t ldy, int rows, int64_t ahead) {
  __m512 acc[MR][kNr];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < kNr; j++) acc[i][j] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 wv[kNr];
    if (ahead != 0)
      for (int j = 0; j < kNr; j++) _mm_prefetch(reinterpret_cast<const char*>(w[j] + p + ahead), _MM_HINT_T0);
    for (int j = 0; j < kNr; j++) wv[j] = _mm512_loadu_ps(w[j] + p);
    for (int i = 0; i < MR; i++) {
      const __m512 xv = _mm512_loadu_ps(x + i * ldx + p);
      for (int j = 0; j < kNr; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (p < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - p)) - 1);
    __m512 wv[kNr];
    for (int j = 0; j < kNr; j++) wv[j] = _mm512_maskz_loadu_ps(mask, w[j] + p);
    for (int i = 0; i < MR; i++) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + p);
      for (int j = 0; j < kNr; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++) {
    alignas(16) float sums[kNr];
    _mm_store_ps(sums, Sum4(acc[i]));
    float* out = y + i * ldy;
    for (int j = 0; j < rows; j++) out[j] = beta == 0.0f ? sums[j] : sums[j] + beta * out[j];
  }
}

// One row of X against NR consecutive rows of W (stride ldw): y[j] (+)= x . w[j] for j < NR, each
// accumulator and add tree as Block's.
template <int NR>
PREFKIT_AVX512 void WideBlock(int64_t k, const float* x, const float* w, int64_t ldw, float beta, float* y) {
  __m512 acc[NR];
  for (int j = 0; j < NR; j++) acc[j] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    const __m512 xv = _mm512_loadu_ps(x + p);
    for (int j = 0; j < NR; j++) acc[j] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + j * ldw + p), acc[j]);
  }
  if (p < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - p)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + p);
    for (int j = 0; j < NR; j++) acc[j] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, w + j * ldw + p), acc[j]);
  }
  for (int g = 0; g < NR; g += kNr) {
    alignas(16) float sums[kNr];
    _mm_store_ps(sums, Sum4(acc + g));
    for (int j = 0; j < kNr; j++) y[g + j] = beta == 0.0f ? sums[j] : sums[j] + beta * y[g + j];
  }
}

}  // namespace

PREFKIT_AVX512 void GemvF32Avx512(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* x, int64_t ldx,
                                  const float* w, int64_t ldw, float beta, float* y, int64_t ldy) {
  if (m == 1) {
    for (; n0 + kWideNr <= n1; n0 += kWideNr) WideBlock<kWideNr>(k, x, w + n0 * ldw, ldw, beta, y + n0);
    for (; n0 + kNr <= n1; n0 += kNr) WideBlock<kNr>(k, x, w + n0 * ldw, ldw, beta, y + n0);
  }
  for (int64_t n = n0; n < n1; n += kNr) {
    const int rows = static_cast<int>(n1 - n < kNr ? n1 - n : kNr);
    // Past the edge, repeat the first row of the block (read, never stored).
    const float* wr[kNr];
    for (int j = 0; j < kNr; j++) wr[j] = w + (n + (j < rows ? j : 0)) * ldw;
    // The first group of X's rows prefetches the next block (prefetches past the end do not fault).
    const int64_t ahead = n + kNr < n1 ? kNr * ldw : 0;
    int64_t i = 0;
    for (; i + kMr <= m; i += kMr) Block<kMr>(k, x + i * ldx, ldx, wr, beta, y + i * ldy + n, ldy, rows, i == 0 ? ahead : 0);
    const int64_t pf = i == 0 ? ahead : 0;
    switch (m - i) {
      case 3:
        Block<3>(k, x + i * ldx, ldx, wr, beta, y + i * ldy + n, ldy, rows, pf);
        break;
      case 2:
        Block<2>(k, x + i * ldx, ldx, wr, beta, y + i * ldy + n, ldy, rows, pf);
        break;
      case 1:
        Block<1>(k, x + i * ldx, ldx, wr, beta, y + i * ldy + n, ldy, rows, pf);
        break;
      default:
        break;
    }
  }
}

}  // namespace gemm
}  // namespace prefkit
#endif
