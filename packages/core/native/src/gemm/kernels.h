// The dispatch table of prefkit's GEMM: one register-blocked microkernel per instruction set, plus
// the blocking sizes it wants. The framework (driver.cc) packs panels of A and B and calls these.
//
// Packed layouts (written by pack.cc):
//   fp32: an A micro-panel is [kc][MR] floats (column p of the MR rows), a B micro-panel [kc][NR].
//   bf16: k comes in pairs; an A micro-panel is [kc/2][MR] words and a B micro-panel [kc/2][NR] words,
//         each word two bf16 values (even k in the low half), as vdpbf16ps consumes them.
// Rows and columns past the matrix edge, and the odd k of a pair at the end, are packed as zeros.
#pragma once

#include <cstdint>

#include "isa.h"

namespace prefkit {
namespace gemm {

// C[i, j] = alpha * sum_p A[p][i] * B[p][j] + beta * C[i, j] for i < m <= MR, j < n <= NR; C is
// row-major with leading dimension ldc. With beta == 0, C is only written (NaNs in it do not
// propagate). Every element of a tile gets the same sequence of operations whatever m and n are, so
// a result never depends on where the tile grid was cut (the thread count).
using KernelF32 = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                           float alpha, float beta);
// The same over bf16 pairs: kp = number of k-pairs.
using KernelBf16 = void (*)(int64_t kp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int m, int n,
                            float alpha, float beta);

// Optional packers of one full micro-panel (`width` lanes, a multiple of 8) from an fp32 source whose
// k runs along memory (lane l at src + l * lane_stride), the case that needs a transpose; null: the
// generic loops of pack.cc.
using PackPanelF32 = void (*)(const float* src, int64_t lane_stride, int64_t depth, int width, float* dst);
using PackPanelPairs = void (*)(const float* src, int64_t lane_stride, int64_t depth, int width, uint32_t* dst);
// A whole block of bf16-pair panels (any number of lanes) from a source whose lanes run along memory
// (k at src + k * depth_stride).
using PackBlockPairsLanes = void (*)(const float* src, int64_t depth_stride, int64_t depth, int64_t lanes, int width,
                                     uint32_t* dst);

struct KernelSet {
  Isa isa = Isa::kScalar;
  // fp32 microkernel and its tile.
  KernelF32 f32 = nullptr;
  int mr = 0, nr = 0;
  // bf16 x bf16 -> fp32 dot-product microkernel, null when the ISA has none: bf16 products then run
  // the fp32 kernel on operands rounded to bf16 and widened while packing.
  KernelBf16 bf16 = nullptr;
  int bf16_mr = 0, bf16_nr = 0;
  // Cache blocking (elements): K is cut into blocks of at most kc (fp32) / kc_bf16 (bf16, even), the
  // packed A block holds mc rows (a multiple of mr) and the packed B block nc columns (multiple of nr).
  int kc = 256, kc_bf16 = 256, mc = 128, nc = 2048;
  PackPanelF32 pack_f32 = nullptr;
  PackPanelPairs pack_pairs = nullptr;
  PackBlockPairsLanes pack_pairs_lanes = nullptr;
};

// The kernel set of `isa` (which the CPU must support).
const KernelSet& Kernels(Isa isa);

// Per-ISA tables, each defined next to its microkernel.
const KernelSet& ScalarKernels();
#if defined(__x86_64__) || defined(_M_X64)
void PackPanelF32Avx2(const float* src, int64_t lane_stride, int64_t depth, int width, float* dst);
void PackPanelPairsAvx512(const float* src, int64_t lane_stride, int64_t depth, int width, uint32_t* dst);
void PackBlockPairsLanesAvx512(const float* src, int64_t depth_stride, int64_t depth, int64_t lanes, int width,
                               uint32_t* dst);
KernelF32 Avx512F32Kernel();
const KernelSet& Avx2Kernels();
const KernelSet& Avx512Kernels();
const KernelSet& Avx512Bf16Kernels();
#endif

}  // namespace gemm
}  // namespace prefkit
