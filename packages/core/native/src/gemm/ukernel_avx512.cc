// The AVX-512 fp32 microkernel: an 8x48 tile (24 zmm accumulators, 3 B vectors per k, A broadcast).
// Compiled with per-function target attributes, so the rest of the addon stays baseline x86-64.
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "avx512_tile.h"

namespace prefkit {
namespace gemm {
namespace {

constexpr int kMr = 8, kVecs = 3, kNr = 16 * kVecs;

PREFKIT_AVX512 void KernelF32Avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                                    float alpha, float beta) {
  __m512 acc[kMr][kVecs];
  for (int i = 0; i < kMr; i++)
    for (int v = 0; v < kVecs; v++) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; p++) {
    __m512 bv[kVecs];
    for (int v = 0; v < kVecs; v++) bv[v] = _mm512_load_ps(b + v * 16);
    for (int i = 0; i < kMr; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      for (int v = 0; v < kVecs; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMr;
    b += kNr;
  }
  StoreTile<kMr, kVecs>(acc, c, ldc, m, n, alpha, beta);
}

}  // namespace

const KernelSet& Avx512Kernels() {
  static const KernelSet set = [] {
    KernelSet s;
    s.isa = Isa::kAvx512;
    s.f32 = KernelF32Avx512;
    s.mr = kMr;
    s.nr = kNr;
    s.kc = s.kc_bf16 = 1024;
    s.mc = 128;
    s.nc = 4800;
    s.pack_f32 = PackPanelF32Avx2;
    return s;
  }();
  return set;
}

}  // namespace gemm
}  // namespace prefkit
#endif
