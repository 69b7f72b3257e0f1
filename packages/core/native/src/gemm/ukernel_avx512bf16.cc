// The AVX512_BF16 microkernel: bf16 x bf16 -> fp32 with vdpbf16ps on an 8x48 tile. Each instruction
// takes one k-pair: B is packed with the two k of a pair interleaved per column, A as one 32-bit word
// (its two bf16) per row and pair, broadcast. The products of two bf16 are exact in fp32; each pair
// adds with one rounding (vdpbf16ps flushes denormal inputs and outputs to zero).
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "avx512_tile.h"

namespace prefkit {
namespace gemm {
namespace {

constexpr int kMr = 8, kVecs = 3, kNr = 16 * kVecs;

PREFKIT_AVX512BF16 void KernelBf16Avx512(int64_t kp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc,
                                         int m, int n, float alpha, float beta) {
  __m512 acc[kMr][kVecs];
  for (int i = 0; i < kMr; i++)
    for (int v = 0; v < kVecs; v++) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kp; p++) {
    __m512bh bv[kVecs];
    for (int v = 0; v < kVecs; v++) bv[v] = (__m512bh)_mm512_load_si512(b + v * 16);
    for (int i = 0; i < kMr; i++) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
      for (int v = 0; v < kVecs; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
    }
    a += kMr;
    b += kNr;
  }
  StoreTile<kMr, kVecs>(acc, c, ldc, m, n, alpha, beta);
}

}  // namespace

const KernelSet& Avx512Bf16Kernels() {
  static const KernelSet set = [] {
    KernelSet s = Avx512Kernels();
    s.isa = Isa::kAvx512Bf16;
    s.bf16 = KernelBf16Avx512;
    s.bf16_mr = kMr;
    s.bf16_nr = kNr;
    s.kc_bf16 = 2048;
    s.pack_pairs = PackPanelPairsAvx512;
    s.pack_pairs_lanes = PackBlockPairsLanesAvx512;
    return s;
  }();
  return set;
}

}  // namespace gemm
}  // namespace prefkit
#endif
