// The transposing bf16-pair packer for AVX-512 machines: 16 fp32 of a row rounded to bf16 at once
// (round to nearest even, as FloatToBf16, so every packer gives the same bits), the resulting 32-bit
// pairs of 8 rows transposed in registers.
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12 flags the undefined pass-through operand of its own shift intrinsics (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "avx512_tile.h"
#include "bf16.h"
#include "transpose_avx2.h"

namespace prefkit {
namespace gemm {
namespace {

// 16 floats -> 16 bf16 (8 pairs, even k in the low half of each 32-bit word).
PREFKIT_AVX512 inline __m256i RoundPairs(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i upper = _mm512_srli_epi32(u, 16);
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(upper, _mm512_set1_epi32(1)));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(upper, _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace

PREFKIT_AVX512 void PackPanelPairsAvx512(const float* src, int64_t lane_stride, int64_t depth, int width,
                                         uint32_t* dst) {
  const int64_t full = depth / 16 * 16, pairs = (depth + 1) / 2;
  for (int g = 0; g < width; g += 8) {
    const float* rows = src + g * lane_stride;
    for (int64_t d = 0; d < full; d += 16) {
      __m256 r[8];
      for (int i = 0; i < 8; i++)
        r[i] = _mm256_castsi256_ps(RoundPairs(_mm512_loadu_ps(rows + i * lane_stride + d)));
      Transpose8x8(r);
      for (int j = 0; j < 8; j++) _mm256_storeu_ps(reinterpret_cast<float*>(dst + (d / 2 + j) * width + g), r[j]);
    }
    for (int64_t p = full / 2; p < pairs; p++) {
      for (int i = 0; i < 8; i++) {
        const float* row = rows + i * lane_stride;
        const uint32_t odd = 2 * p + 1 < depth ? FloatToBf16(row[2 * p + 1]) : 0u;
        dst[p * width + g + i] = FloatToBf16(row[2 * p]) | odd << 16;
      }
    }
  }
}

}  // namespace gemm
}  // namespace prefkit
#endif
