// The run-time OpenBLAS route (see openblas.h). The prototypes are declared here, as CBLAS defines
// them for LP64 builds (Debian's libopenblas0-pthread), so no cblas.h is needed.
#include "openblas.h"

#include <dlfcn.h>

#include <cstdio>

namespace prefkit {
namespace gemm {
namespace openblas {
namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;  // CBLAS_ORDER, CBLAS_TRANSPOSE

using SgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
using ConfigFn = char* (*)();

SgemmFn gSgemm = nullptr;
SetThreadsFn gSetThreads = nullptr;
GetThreadsFn gGetThreads = nullptr;
ConfigFn gConfig = nullptr;

}  // namespace

bool Load(const char** error) {
  static char message[300];
  if (gSgemm != nullptr) return true;
  void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::snprintf(message, sizeof(message),
                  "PREFKIT_BLAS=openblas but libopenblas.so.0 does not load (%s); install libopenblas0 or unset "
                  "PREFKIT_BLAS",
                  dlerror());
    *error = message;
    return false;
  }
  gSgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
  gSetThreads = reinterpret_cast<SetThreadsFn>(dlsym(lib, "openblas_set_num_threads"));
  gGetThreads = reinterpret_cast<GetThreadsFn>(dlsym(lib, "openblas_get_num_threads"));
  gConfig = reinterpret_cast<ConfigFn>(dlsym(lib, "openblas_get_config"));
  if (gSgemm == nullptr || gSetThreads == nullptr || gGetThreads == nullptr) {
    gSgemm = nullptr;
    std::snprintf(message, sizeof(message),
                  "PREFKIT_BLAS=openblas but libopenblas.so.0 lacks cblas_sgemm or openblas_set_num_threads");
    *error = message;
    return false;
  }
  return true;
}

void Sgemm(const Problem& p) {
  const int lda = static_cast<int>(p.a.ld), ldb = static_cast<int>(p.b.ld), ldc = static_cast<int>(p.ldc);
  gSgemm(kRowMajor, p.a.trans ? kTrans : kNoTrans, p.b.trans ? kTrans : kNoTrans, static_cast<int>(p.m),
         static_cast<int>(p.n), static_cast<int>(p.k), p.alpha, static_cast<const float*>(p.a.data), lda,
         static_cast<const float*>(p.b.data), ldb, p.beta, p.c, ldc);
}

void SetThreads(int threads) {
  if (gSetThreads != nullptr) gSetThreads(threads);
}

int GetThreads() { return gGetThreads != nullptr ? gGetThreads() : 0; }

const char* Config() {
  const char* config = gConfig != nullptr ? gConfig() : nullptr;
  return config != nullptr ? config : "OpenBLAS";
}

}  // namespace openblas
}  // namespace gemm
}  // namespace prefkit
