// Instruction sets of prefkit's GEMM, detected at run time (CPUID), so that one build of the addon
// runs on any x86-64 CPU (and on arm64 with the scalar path). PREFKIT_ISA forces a path.
#pragma once

namespace prefkit {
namespace gemm {

// Ordered by capability: each x86 level includes the ones below it.
enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };
constexpr int kIsaCount = 4;

// "scalar", "avx2", "avx512", "avx512bf16".
const char* IsaName(Isa isa);
// Parses an ISA name; false for an unknown one.
bool ParseIsa(const char* name, Isa* out);

// The best ISA this CPU (and OS, for the AVX register state) supports.
Isa DetectedIsa();
// Whether this CPU can run `isa`.
inline bool IsaSupported(Isa isa) { return static_cast<int>(isa) <= static_cast<int>(DetectedIsa()); }

// The ISA GEMMs run with: PREFKIT_ISA when set (and supported), else DetectedIsa().
Isa ActiveIsa();
// Reads PREFKIT_ISA once; returns false with a one-line reason when it names an unknown path or one
// this CPU lacks (the addon then refuses to load).
bool InitIsa(const char** error);

}  // namespace gemm
}  // namespace prefkit
