// The dispatch table: which microkernel set runs for an instruction set.
#include "kernels.h"

namespace prefkit {
namespace gemm {

const KernelSet& Kernels(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (isa) {
    case Isa::kAvx512Bf16:
      return Avx512Bf16Kernels();
    case Isa::kAvx512:
      return Avx512Kernels();
    case Isa::kAvx2:
      return Avx2Kernels();
    case Isa::kScalar:
      break;
  }
#else
  (void)isa;
#endif
  return ScalarKernels();
}

}  // namespace gemm
}  // namespace prefkit
