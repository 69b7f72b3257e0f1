// The transposing fp32 packer for AVX2 and AVX-512 machines: a micro-panel from a source whose k runs
// along memory (A not transposed, B transposed: x W^T), by 8x8 register transposes instead of one
// strided store per element.
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "transpose_avx2.h"

namespace prefkit {
namespace gemm {

PREFKIT_AVX2 void PackPanelF32Avx2(const float* src, int64_t lane_stride, int64_t depth, int width, float* dst) {
  const int64_t full = depth / 8 * 8;
  for (int g = 0; g < width; g += 8) {
    const float* rows = src + g * lane_stride;
    for (int64_t d = 0; d < full; d += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(rows + i * lane_stride + d);
      Transpose8x8(r);
      for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + (d + j) * width + g, r[j]);
    }
    for (int64_t d = full; d < depth; d++)
      for (int i = 0; i < 8; i++) dst[d * width + g + i] = rows[i * lane_stride + d];
  }
}

}  // namespace gemm
}  // namespace prefkit
#endif
