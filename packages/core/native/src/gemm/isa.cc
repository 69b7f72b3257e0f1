// CPUID-based detection of the GEMM's instruction set, and the PREFKIT_ISA override.
#include "isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace prefkit {
namespace gemm {
namespace {

const char* const kNames[kIsaCount] = {"scalar", "avx2", "avx512", "avx512bf16"};

#if defined(__x86_64__) || defined(_M_X64)
unsigned long long Xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

Isa Detect() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::kScalar;
  const bool osxsave = (ecx >> 27) & 1, fma = (ecx >> 12) & 1;
  if (!osxsave) return Isa::kScalar;
  // The OS must save the registers: XMM+YMM (bits 1, 2), and for AVX-512 the opmask and ZMM state (5-7).
  const unsigned long long xcr0 = Xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::kScalar;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned max_subleaf = eax;
  const bool avx2 = (ebx >> 5) & 1;
  const bool avx512 = ((ebx >> 16) & 1) && ((ebx >> 17) & 1) && ((ebx >> 30) & 1) && ((ebx >> 31) & 1);  // F DQ BW VL
  bool bf16 = false;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    bf16 = (eax >> 5) & 1;
  }
  if (!ymm_state || !avx2 || !fma) return Isa::kScalar;
  if (!zmm_state || !avx512) return Isa::kAvx2;
  return bf16 ? Isa::kAvx512Bf16 : Isa::kAvx512;
}
#else
Isa Detect() { return Isa::kScalar; }
#endif

Isa gActive = Isa::kScalar;
bool gInitialised = false;

}  // namespace

const char* IsaName(Isa isa) { return kNames[static_cast<int>(isa)]; }

bool ParseIsa(const char* name, Isa* out) {
  for (int i = 0; i < kIsaCount; i++) {
    if (std::strcmp(name, kNames[i]) == 0) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

Isa DetectedIsa() {
  static const Isa detected = Detect();
  return detected;
}

bool InitIsa(const char** error) {
  static char message[200];
  gActive = DetectedIsa();
  gInitialised = true;
  const char* forced = std::getenv("PREFKIT_ISA");
  if (forced == nullptr || forced[0] == '\0') return true;
  Isa isa;
  if (!ParseIsa(forced, &isa)) {
    std::snprintf(message, sizeof(message), "PREFKIT_ISA=%s is not one of avx512bf16, avx512, avx2, scalar", forced);
    *error = message;
    return false;
  }
  if (!IsaSupported(isa)) {
    std::snprintf(message, sizeof(message), "PREFKIT_ISA=%s: this CPU lacks it (it supports up to %s)", forced,
                  IsaName(DetectedIsa()));
    *error = message;
    return false;
  }
  gActive = isa;
  return true;
}

Isa ActiveIsa() {
  if (!gInitialised) {
    const char* ignored;
    InitIsa(&ignored);
  }
  return gActive;
}

}  // namespace gemm
}  // namespace prefkit
