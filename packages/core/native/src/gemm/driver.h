// The built-in GEMM's blocking framework (driver.cc), below the dispatch of gemm.cc.
#pragma once

#include "gemm.h"
#include "kernels.h"
#include "pack.h"

namespace prefkit {
namespace gemm {

// How one product is blocked and which microkernel runs it.
struct Plan {
  const KernelSet* kernels = nullptr;
  KernelF32 f32 = nullptr;
  KernelBf16 bf16 = nullptr;  // set: the bf16 pair kernel runs
  int mr = 0, nr = 0;
  int64_t kc = 0, mc = 0, nc = 0;
  PackFormat a_format = PackFormat::kF32, b_format = PackFormat::kF32;
};

// The plan of a product with depth k in `compute` on `ks`: K cut into equal blocks of at most the set's
// kc, rounded up to even so that bf16 pairs never straddle two blocks.
Plan MakePlan(const KernelSet& ks, Type compute, int64_t k);

// Micro-panels of `width` lanes that cover `size` lanes.
inline int64_t Panels(int64_t size, int width) { return (size + width - 1) / width; }

// A pre-packed B and how a product uses it: as packed (op(B)), or transposed (op(B)ᵀ, whose panels are
// derived per block from the pack: packed.cc).
struct PackedUse {
  const PackedB* packed;
  bool transposed;
};

// One product on `kernels`, threaded over the pool (single-threaded inside a Run() task); `use`, when not
// null, replaces p.b.
void BuiltinGemm(const Problem& p, const KernelSet& kernels, const PackedUse* use);

// Entries of a batch, in parallel when they are small (see GemmBatched).
void BuiltinGemmBatched(const Problem& p, int64_t batch, const int64_t* a_offsets, const int64_t* b_offsets,
                        const int64_t* c_offsets, const KernelSet& kernels);

// Entry i of a batch: p with the three pointers moved by the offsets (in elements).
Problem BatchEntry(const Problem& p, int64_t i, const int64_t* a_offsets, const int64_t* b_offsets,
                   const int64_t* c_offsets);

// The same decision as BuiltinGemmBatched's, for the OpenBLAS route.
bool BatchInParallel(const Problem& p, int64_t batch);

}  // namespace gemm
}  // namespace prefkit
