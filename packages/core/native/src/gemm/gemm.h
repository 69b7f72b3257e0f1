// prefkit's GEMM: C = alpha * op(A) * op(B) + beta * C on row-major matrices, fp32 or bf16 operands,
// fp32 or bf16 products (always summed in fp32), threaded over the pool of pool.h. Built in (no system
// BLAS); with PREFKIT_BLAS=openblas, fp32 products go to a run-time-loaded OpenBLAS instead.
//
// Results of the built-in GEMM are bit-identical for any thread count: threads split C into tiles on
// one fixed grid, and K is blocked the same way whatever the split.
#pragma once

#include <cstdint>

#include "isa.h"
#include "pool.h"

namespace prefkit {
namespace gemm {

// Storage type of an operand: fp32, or bf16 (the upper 16 bits of an fp32, in a uint16).
enum class Type : uint8_t { kF32, kBF16 };

// op(X): a row-major matrix at `data` (elements of `type`) with leading dimension `ld`, transposed or not.
struct Operand {
  const void* data = nullptr;
  Type type = Type::kF32;
  bool trans = false;
  int64_t ld = 0;
};

struct Problem {
  int64_t m = 0, n = 0, k = 0;  // op(A) is m x k, op(B) k x n, C m x n
  Operand a, b;
  float* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f, beta = 0.0f;  // beta == 0: C is only written
  // kBF16: every operand is rounded to bf16 (round-to-nearest-even) and the exact products are summed
  // in fp32: vdpbf16ps on AVX512_BF16, else the fp32 kernel on the rounded values.
  Type compute = Type::kF32;
};

// Which implementation runs a product.
enum class Blas { kBuiltin, kOpenBlas };

// An explicit choice of implementation (tests, benchmarks): OpenBLAS (loaded on first use; it takes
// fp32 products only, others stay built in) or the built-in GEMM on `isa` (the CPU must support it).
struct Route {
  Blas blas;
  Isa isa;
};
// The process's choice: OpenBLAS when PREFKIT_BLAS=openblas, else built in on ActiveIsa().
Route DefaultRoute();
// Loads OpenBLAS for Route{kOpenBlas}; false with a one-line reason.
bool LoadOpenBlas(const char** error);

// One product on the process's route, or on `route`.
void Gemm(const Problem& p);
void Gemm(const Problem& p, const Route& route);

// `batch` products; entry i reads A at a.data + a_offsets[i] elements, B at b.data + b_offsets[i] and
// writes C at c + c_offsets[i]. Small entries run in parallel, large ones one after another, each
// threaded; either way each entry's result is the same as from Gemm.
void GemmBatched(const Problem& p, int64_t batch, const int64_t* a_offsets, const int64_t* b_offsets,
                 const int64_t* c_offsets);
void GemmBatched(const Problem& p, int64_t batch, const int64_t* a_offsets, const int64_t* b_offsets,
                 const int64_t* c_offsets, const Route& route);

// cblas_sgemm's row-major form, for the fused decoder and the kernel plugin.
enum Trans : bool { kNoTrans = false, kTrans = true };
void Sgemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// B packed once into the microkernel's panels (e.g. a frozen weight W [out, in] as op(B) = Wᵀ for
// y = x·Wᵀ), for any number of products with it, and with its transpose (dx = dy·W: the transposed
// product derives its panels per block from the same pack, so one pack serves both). Kept at 2 bytes
// per element when the source or the products are bf16. Always runs on the built-in GEMM.
struct PackedB;
// Packs op(B) (k x n) for products in `compute` on `isa`; null when out of memory.
PackedB* PackB(const Operand& b, int64_t k, int64_t n, Type compute, Isa isa);
// Packs op(B) again into `packed` (same k x n, compute and ISA; a new source of the same type), without
// allocating: a trainable weight's per-step copy. False when the source type does not fit the pack.
bool RepackB(PackedB* packed, const Operand& b);
// Writes the packed op(B) (k x n) into `out` (elements of `type`, row-major with leading dimension ld, or
// transposed): the layout it was packed from. False when `type` is bf16 and the pack holds fp32 values
// (a pack for fp32 products of an fp32 source), which bf16 cannot hold exactly.
bool UnpackB(const PackedB& packed, void* out, Type type, bool trans, int64_t ld);
void FreePackedB(PackedB* packed);
int64_t PackedBBytes(const PackedB& packed);
int64_t PackedBRows(const PackedB& packed);  // k
int64_t PackedBCols(const PackedB& packed);  // n
// C = alpha * op(A) * B + beta * C with a packed B (m x k times k x n); `transposed`: with Bᵀ instead (m x n
// times n x k, C m x k).
void GemmPacked(int64_t m, const Operand& a, const PackedB& b, float alpha, float beta, float* c, int64_t ldc,
                bool transposed = false);

// Runs fn(task, worker) over the pool for tasks that call GEMMs themselves (each of those then runs
// single-threaded, so results are the same as from one thread). Under OpenBLAS, its threads are set to
// 1 for the duration, so that the tasks' calls do not each start their own threads.
void ParallelGemms(int tasks, FunctionRef<void(int, int)> fn);

// What runs: the BLAS, and the ISA of the built-in GEMM.
Blas ActiveBlas();
const char* BlasName(Blas blas);
// Reads PREFKIT_ISA and PREFKIT_BLAS (loading OpenBLAS when asked); false with a one-line reason when
// either cannot be honoured.
bool Init(const char** error);
// Sets the pool's threads (and OpenBLAS's, when it runs the products).
void SetNumThreads(int threads);
// How bf16 products run on the active ISA, one line: "vdpbf16ps (avx512bf16)", or the fp32 kernel of
// the ISA on operands rounded to bf16 (e.g. "avx2 fp32 kernel on bf16-rounded operands (no AVX512_BF16)").
const char* Bf16Path();
// A one-line description, e.g. "prefkit GEMM avx512bf16 (fp32 8x48, bf16 8x48), 2 threads".
const char* Describe();

}  // namespace gemm
}  // namespace prefkit
