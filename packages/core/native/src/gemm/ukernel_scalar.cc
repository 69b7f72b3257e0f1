// The plain C++ microkernel: the reference path, and the only one on CPUs without AVX2 and on arm64
// (where the compiler vectorizes it for NEON). No bf16 kernel: bf16 operands are widened while packing.
#include "kernels.h"

namespace prefkit {
namespace gemm {
namespace {

constexpr int kMr = 4, kNr = 8;

void KernelF32Scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, float alpha,
                     float beta) {
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; p++) {
    for (int i = 0; i < kMr; i++) {
      const float ai = a[p * kMr + i];
      for (int j = 0; j < kNr; j++) acc[i][j] += ai * b[p * kNr + j];
    }
  }
  for (int i = 0; i < m; i++) {
    float* row = c + i * ldc;
    for (int j = 0; j < n; j++) {
      const float t = alpha * acc[i][j];
      row[j] = beta == 0.0f ? t : beta * row[j] + t;
    }
  }
}

}  // namespace

const KernelSet& ScalarKernels() {
  static const KernelSet set = [] {
    KernelSet s;
    s.isa = Isa::kScalar;
    s.f32 = KernelF32Scalar;
    s.mr = kMr;
    s.nr = kNr;
    s.kc = s.kc_bf16 = 256;
    s.mc = 128;
    s.nc = 2048;
    return s;
  }();
  return set;
}

}  // namespace gemm
}  // namespace prefkit
