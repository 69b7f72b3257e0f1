// The built-in GEMM's blocking framework (driver.cc), below the dispatch of gemm.cc.
#pragma once

#include "gemm.h"
#include "kernels.h"

namespace prefkit {
namespace gemm {

// One product on `kernels`, threaded over the pool (single-threaded inside a Run() task); `packed`,
// when not null, replaces p.b.
void BuiltinGemm(const Problem& p, const KernelSet& kernels, const PackedB* packed);

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
