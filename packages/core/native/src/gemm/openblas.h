// OpenBLAS, loaded at run time (dlopen) when PREFKIT_BLAS=openblas: the addon never links it, so it
// builds and loads without any BLAS package; this route exists for comparisons.
#pragma once

#include "gemm.h"

namespace prefkit {
namespace gemm {
namespace openblas {

// Loads libopenblas.so.0 and its symbols; false with a one-line reason.
bool Load(const char** error);
// C = alpha op(A) op(B) + beta C through cblas_sgemm (fp32 operands, dimensions below 2^31).
void Sgemm(const Problem& p);
void SetThreads(int threads);
int GetThreads();
// openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64".
const char* Config();

}  // namespace openblas
}  // namespace gemm
}  // namespace prefkit
