// The GEMM's front door: routes each product to OpenBLAS (PREFKIT_BLAS=openblas, fp32 only) or to the
// built-in GEMM on the active ISA, and keeps the process-wide settings (ISA, BLAS, threads).
#include "gemm.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "driver.h"
#include "kernels.h"
#include "openblas.h"

namespace prefkit {
namespace gemm {
namespace {

Blas gBlas = Blas::kBuiltin;

bool gOpenBlasLoaded = false;

// Whether OpenBLAS can take p: fp32 throughout, non-empty, dimensions that fit its 32-bit ints.
bool OpenBlasTakes(const Problem& p, const Route& route) {
  constexpr int64_t kMax = 0x7FFFFFFF;
  return route.blas == Blas::kOpenBlas && gOpenBlasLoaded && p.compute == Type::kF32 && p.a.type == Type::kF32 &&
         p.b.type == Type::kF32 && p.m > 0 && p.n > 0 && p.k > 0 && p.m <= kMax && p.n <= kMax && p.k <= kMax &&
         p.a.ld <= kMax && p.b.ld <= kMax && p.ldc <= kMax;
}

}  // namespace

Route DefaultRoute() { return {gBlas, ActiveIsa()}; }

bool LoadOpenBlas(const char** error) {
  if (gOpenBlasLoaded) return true;
  if (!openblas::Load(error)) return false;
  gOpenBlasLoaded = true;
  openblas::SetThreads(Threads());
  return true;
}

void Gemm(const Problem& p) { Gemm(p, DefaultRoute()); }

void Gemm(const Problem& p, const Route& route) {
  if (OpenBlasTakes(p, route)) openblas::Sgemm(p);
  else BuiltinGemm(p, Kernels(route.isa), nullptr);
}

void GemmBatched(const Problem& p, int64_t batch, const int64_t* a_offsets, const int64_t* b_offsets,
                 const int64_t* c_offsets) {
  GemmBatched(p, batch, a_offsets, b_offsets, c_offsets, DefaultRoute());
}

void GemmBatched(const Problem& p, int64_t batch, const int64_t* a_offsets, const int64_t* b_offsets,
                 const int64_t* c_offsets, const Route& route) {
  if (OpenBlasTakes(p, route)) {
    // OpenBLAS threads inside each product; small entries instead run side by side on one thread each.
    const auto entry = [&](int i, int) { openblas::Sgemm(BatchEntry(p, i, a_offsets, b_offsets, c_offsets)); };
    if (BatchInParallel(p, batch)) ParallelGemms(static_cast<int>(batch), entry);
    else
      for (int64_t i = 0; i < batch; i++) entry(static_cast<int>(i), 0);
    return;
  }
  BuiltinGemmBatched(p, batch, a_offsets, b_offsets, c_offsets, Kernels(route.isa));
}

void Sgemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  Problem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = {a, Type::kF32, trans_a == kTrans, lda};
  p.b = {b, Type::kF32, trans_b == kTrans, ldb};
  p.c = c;
  p.ldc = ldc;
  p.alpha = alpha;
  p.beta = beta;
  Gemm(p);
}

void ParallelGemms(int tasks, FunctionRef<void(int, int)> fn) {
  const bool serial_blas = gOpenBlasLoaded && !InParallelRegion() && Threads() > 1;
  if (serial_blas) openblas::SetThreads(1);
  Run(tasks, fn);
  if (serial_blas) openblas::SetThreads(Threads());
}

Blas ActiveBlas() { return gBlas; }
const char* BlasName(Blas blas) { return blas == Blas::kOpenBlas ? "openblas" : "builtin"; }

bool Init(const char** error) {
  if (!InitIsa(error)) return false;
  const char* blas = std::getenv("PREFKIT_BLAS");
  if (blas == nullptr || blas[0] == '\0' || std::strcmp(blas, "builtin") == 0) {
    gBlas = Blas::kBuiltin;
    return true;
  }
  if (std::strcmp(blas, "openblas") != 0) {
    static char message[160];
    std::snprintf(message, sizeof(message), "PREFKIT_BLAS=%s is not one of openblas, builtin", blas);
    *error = message;
    return false;
  }
  if (!LoadOpenBlas(error)) return false;
  gBlas = Blas::kOpenBlas;
  return true;
}

void SetNumThreads(int threads) {
  SetThreads(threads);
  if (gOpenBlasLoaded) openblas::SetThreads(Threads());
}

const char* Bf16Path() {
  static char text[160];
  const KernelSet& ks = Kernels(ActiveIsa());
  if (ks.bf16 != nullptr) {
    std::snprintf(text, sizeof(text), "vdpbf16ps (%s)", IsaName(ks.isa));
  } else {
    std::snprintf(text, sizeof(text), "%s fp32 kernel on bf16-rounded operands (no AVX512_BF16)", IsaName(ks.isa));
  }
  return text;
}

const char* Describe() {
  static char text[300];
  if (gBlas == Blas::kOpenBlas) {
    std::snprintf(text, sizeof(text), "%s (PREFKIT_BLAS=openblas), %d threads", openblas::Config(),
                  openblas::GetThreads());
    return text;
  }
  const KernelSet& ks = Kernels(ActiveIsa());
  if (ks.bf16 != nullptr) {
    std::snprintf(text, sizeof(text), "prefkit GEMM %s (fp32 %dx%d, bf16 %dx%d), %d threads", IsaName(ks.isa), ks.mr,
                  ks.nr, ks.bf16_mr, ks.bf16_nr, Threads());
  } else {
    std::snprintf(text, sizeof(text), "prefkit GEMM %s (fp32 %dx%d), %d threads", IsaName(ks.isa), ks.mr, ks.nr,
                  Threads());
  }
  return text;
}

}  // namespace gemm
}  // namespace prefkit
