// A B operand packed once (PackB, for frozen weights and per-step copies of trainable ones), and the
// derivation of the panels of its transpose from it (packed.cc), so that one pack serves both products
// of a linear layer: y = x·Wᵀ (op(B) = Wᵀ as packed) and dx = dy·W (its transpose).
#pragma once

#include <cstdint>

#include "driver.h"

namespace prefkit {
namespace gemm {

// For each K block (depth kc, the last one shorter), all of its N panels (nr wide) back to back.
struct PackedB {
  const KernelSet* kernels;
  Type compute;
  int64_t k, n;
  PackFormat format;  // kF32, kBf16 (widened per block) or kBf16Pairs
  int64_t kc;         // K block depth of the plan it was packed for
  int nr;             // panel width
  int64_t bytes;
  char* data;
};

// Byte offset of K block `kb` (the blocks before it have full depth).
inline int64_t PackedBlockOffset(const PackedB& pb, int64_t kb) {
  return kb * Panels(pb.n, pb.nr) * PanelBytes(pb.format, pb.kc, pb.nr);
}

// Panels [p0, p1) of one B block of the transposed product, from the pack: B' = op(B)ᵀ (pb.n x pb.k), its
// columns [jc, jc + nc) (rows of op(B)) and depth [k0, k0 + kc) (columns of op(B)), in `format` panels of
// `nr` lanes starting at `block` (panel p at block + p * PanelBytes(format, kc, nr)); lanes past pb.k are
// zero. Exact: a 16-bit pack gives bf16 values, which every target format holds exactly.
void DeriveTransposedPanels(const PackedB& pb, int64_t jc, int64_t nc, int64_t k0, int64_t kc, int64_t p0,
                            int64_t p1, PackFormat format, int nr, char* block);

}  // namespace gemm
}  // namespace prefkit
