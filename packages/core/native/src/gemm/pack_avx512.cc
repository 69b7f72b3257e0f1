// The bf16-pair packers for AVX-512 machines: 16 fp32 rounded to bf16 at once (round to nearest
// even, as FloatToBf16, so every packer gives the same bits); when k runs along memory the resulting
// 32-bit pairs of 8 rows are transposed in registers, when the lanes do, two rows are interleaved.
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

// Rounds 16 floats to bf16, each in the low half of its 32-bit lane.
PREFKIT_AVX512 inline __m512i Round16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i upper = _mm512_srli_epi32(u, 16);
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(upper, _mm512_set1_epi32(1)));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(upper, _mm512_set1_epi32(0x40)));
}

// 16 floats -> 16 bf16 (8 pairs, even k in the low half of each 32-bit word).
PREFKIT_AVX512 inline __m256i RoundPairs(__m512 x) { return _mm512_cvtepi32_epi16(Round16(x)); }

}  // namespace

// A block of panels from a source whose lanes run along memory (A transposed, B not): per k-pair, the
// even and the odd row are read once across the whole block, 16 lanes at a time rounded and
// interleaved into 32-bit pairs, and spread over the panels; missing lanes and the odd k of a last
// unpaired row are zeros.
PREFKIT_AVX512 void PackBlockPairsLanesAvx512(const float* src, int64_t depth_stride, int64_t depth, int64_t lanes,
                                              int width, uint32_t* dst) {
  const int64_t pairs = (depth + 1) / 2;
  const int64_t panels = (lanes + width - 1) / width;
  for (int64_t p = 0; p < pairs; p++) {
    const float* even = src + 2 * p * depth_stride;
    const float* odd = even + depth_stride;
    const bool has_odd = 2 * p + 1 < depth;
    for (int64_t panel = 0; panel < panels; panel++) {
      uint32_t* out = dst + (panel * pairs + p) * width;
      const int64_t l0 = panel * width;
      for (int l = 0; l < width; l += 16) {
        const int64_t left = lanes - l0 - l;
        const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                               : left <= 0 ? static_cast<__mmask16>(0)
                                           : static_cast<__mmask16>((1u << left) - 1);
        const __m512i e = Round16(_mm512_maskz_loadu_ps(mask, even + l0 + l));
        const __m512i o = has_odd ? Round16(_mm512_maskz_loadu_ps(mask, odd + l0 + l)) : _mm512_setzero_si512();
        const __m512i words = _mm512_or_si512(e, _mm512_slli_epi32(o, 16));
        const int room = width - l;
        const __mmask16 store = room >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << room) - 1);
        _mm512_mask_storeu_epi32(out + l, store, words);
      }
    }
  }
}

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
