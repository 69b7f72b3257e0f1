// The BLIS-style blocking framework of the built-in GEMM: loops over blocks of N (nc), K (kc) and M
// (mc); per (N, K) block one packed B block, per M block one packed A block, then the microkernel over
// every mr x nr tile. Threads split the rows of C (sharing each packed B block) or, when there are too
// few rows, its columns; either way on the one tile grid anchored at C[0, 0], and K is blocked the same
// way whatever the split (kc depends only on K and the kernel set), so every element is computed by the
// same operations for any thread count.
#include "driver.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "pack.h"
#include "packed.h"
#include "pool.h"

namespace prefkit {
namespace gemm {

namespace {

// Below this many flops per thread, waking another thread costs more than it saves.
constexpr double kMinFlopsPerThread = 4e6;
// Batch entries below this many flops run one per thread rather than each on all threads.
constexpr double kMaxFlopsPerParallelEntry = 64e6;

// A growable 64-byte aligned scratch buffer, one per thread and operand.
struct Scratch {
  void* data = nullptr;
  size_t size = 0;
  void* Get(size_t bytes) {
    if (bytes > size) {
      std::free(data);
      size = (bytes + 4095) / 4096 * 4096;
      data = std::aligned_alloc(64, size);
      if (data == nullptr) std::abort();
    }
    return data;
  }
  ~Scratch() { std::free(data); }
};
thread_local Scratch tPackA, tPackB, tShared;

PackSource SourceA(const Operand& a) {
  return {a.data, a.type, a.trans ? 1 : a.ld, a.trans ? a.ld : 1};
}
PackSource SourceB(const Operand& b) {
  return {b.data, b.type, b.trans ? b.ld : 1, b.trans ? 1 : b.ld};
}

// Every mr x nr tile of an mc x nc block of C from packed A and B blocks.
void MacroKernel(const Plan& plan, int64_t kc, const char* a, const char* b, float* c, int64_t ldc, int64_t mc,
                 int64_t nc, float alpha, float beta) {
  const int64_t a_panel = PanelBytes(plan.a_format, kc, plan.mr);
  const int64_t b_panel = PanelBytes(plan.b_format, kc, plan.nr);
  for (int64_t jr = 0; jr < nc; jr += plan.nr) {
    const char* bp = b + jr / plan.nr * b_panel;
    const int n = static_cast<int>(std::min<int64_t>(plan.nr, nc - jr));
    for (int64_t ir = 0; ir < mc; ir += plan.mr) {
      const char* ap = a + ir / plan.mr * a_panel;
      const int m = static_cast<int>(std::min<int64_t>(plan.mr, mc - ir));
      float* ct = c + ir * ldc + jr;
      if (plan.bf16 != nullptr) {
        plan.bf16((kc + 1) / 2, reinterpret_cast<const uint32_t*>(ap), reinterpret_cast<const uint32_t*>(bp), ct, ldc,
                  m, n, alpha, beta);
      } else {
        plan.f32(kc, reinterpret_cast<const float*>(ap), reinterpret_cast<const float*>(bp), ct, ldc, m, n, alpha,
                 beta);
      }
    }
  }
}

// Whether a pack's panels feed the microkernel as they are (else they are widened or derived per block).
bool InPlace(const PackedUse* use) {
  return use != nullptr && !use->transposed && use->packed->format != PackFormat::kBf16;
}

// Panels [p0, p1) of the B block of columns [jc, jc + nc) and depth [k0, k0 + kc), into `block` (the
// block's first panel): packed from the source, widened from a bf16 pack, or derived from a pack used
// transposed.
void PrepareB(const Problem& p, const Plan& plan, const PackedUse* use, int64_t jc, int64_t nc, int64_t k0,
              int64_t kc, int64_t p0, int64_t p1, char* block) {
  const int64_t panel = PanelBytes(plan.b_format, kc, plan.nr);
  const int64_t cols = std::min(nc, p1 * plan.nr) - p0 * plan.nr;
  if (cols <= 0) return;
  if (use == nullptr) {
    PackBlock(SourceB(p.b), jc + p0 * plan.nr, cols, k0, kc, plan.nr, plan.b_format, *plan.kernels,
              block + p0 * panel);
    return;
  }
  const PackedB& pb = *use->packed;
  if (use->transposed) {
    DeriveTransposedPanels(pb, jc, nc, k0, kc, p0, p1, plan.b_format, plan.nr, block);
    return;
  }
  const char* src = pb.data + PackedBlockOffset(pb, k0 / pb.kc) + (jc / plan.nr + p0) * PanelBytes(pb.format, kc, plan.nr);
  WidenBf16(reinterpret_cast<const uint16_t*>(src), (p1 - p0) * panel / 4, reinterpret_cast<float*>(block + p0 * panel));
}

// A pack's panels of a block, used in place.
const char* PackedBlock(const PackedB& pb, const Plan& plan, int64_t jc, int64_t k0, int64_t kc) {
  return pb.data + PackedBlockOffset(pb, k0 / pb.kc) + jc / plan.nr * PanelBytes(pb.format, kc, plan.nr);
}

// Rows [m0, m1) of C times one B block: A packed per mc rows, then every tile.
void RowsTimesBlock(const Problem& p, const Plan& plan, int64_t m0, int64_t m1, int64_t jc, int64_t nc, int64_t k0,
                    int64_t kc, const char* b_block, float beta) {
  const PackSource a_src = SourceA(p.a);
  for (int64_t ic = m0; ic < m1; ic += plan.mc) {
    const int64_t mc = std::min(plan.mc, m1 - ic);
    void* a_block = tPackA.Get(static_cast<size_t>(Panels(mc, plan.mr) * PanelBytes(plan.a_format, kc, plan.mr)));
    PackBlock(a_src, ic, mc, k0, kc, plan.mr, plan.a_format, *plan.kernels, a_block);
    MacroKernel(plan, kc, static_cast<const char*>(a_block), b_block, p.c + ic * p.ldc + jc, p.ldc, mc, nc, p.alpha,
                beta);
  }
}

int64_t BlockBytes(const Plan& plan, int64_t nc, int64_t kc) {
  return Panels(nc, plan.nr) * PanelBytes(plan.b_format, kc, plan.nr);
}

// C[m0:m1, n0:n1] of the product on the calling thread alone.
void RunRegion(const Problem& p, const Plan& plan, const PackedUse* use, int64_t m0, int64_t m1, int64_t n0,
               int64_t n1) {
  for (int64_t jc = n0; jc < n1; jc += plan.nc) {
    const int64_t nc = std::min(plan.nc, n1 - jc);
    for (int64_t k0 = 0; k0 < p.k; k0 += plan.kc) {
      const int64_t kc = std::min(plan.kc, p.k - k0);
      const char* b_block;
      if (InPlace(use)) {
        b_block = PackedBlock(*use->packed, plan, jc, k0, kc);
      } else {
        char* buf = static_cast<char*>(tPackB.Get(static_cast<size_t>(BlockBytes(plan, nc, kc))));
        PrepareB(p, plan, use, jc, nc, k0, kc, 0, Panels(nc, plan.nr), buf);
        b_block = buf;
      }
      RowsTimesBlock(p, plan, m0, m1, jc, nc, k0, kc, b_block, k0 == 0 ? p.beta : 1.0f);
    }
  }
}

// One member of a team that shares each packed B block and splits the rows of C: the members pack a
// share of the block's panels each, wait for each other, then multiply their own rows. Two buffers
// alternate, so one barrier per block suffices: a member that packs block i + 1 has passed block i's
// barrier, which every member reached only after finishing block i - 1 (the same buffer).
void RunTeamMember(const Problem& p, const Plan& plan, const PackedUse* use, int rank, int size, Barrier& barrier,
                   char* const (&shared)[2]) {
  const int64_t row_panels = Panels(p.m, plan.mr);
  const int64_t m0 = std::min(p.m, row_panels * rank / size * plan.mr);
  const int64_t m1 = std::min(p.m, row_panels * (rank + 1) / size * plan.mr);
  int64_t iteration = 0;
  for (int64_t jc = 0; jc < p.n; jc += plan.nc) {
    const int64_t nc = std::min(plan.nc, p.n - jc);
    for (int64_t k0 = 0; k0 < p.k; k0 += plan.kc, iteration++) {
      const int64_t kc = std::min(plan.kc, p.k - k0);
      const char* b_block;
      if (InPlace(use)) {
        b_block = PackedBlock(*use->packed, plan, jc, k0, kc);
      } else {
        char* buf = shared[iteration & 1];
        const int64_t panels = Panels(nc, plan.nr);
        PrepareB(p, plan, use, jc, nc, k0, kc, panels * rank / size, panels * (rank + 1) / size, buf);
        barrier.Wait();
        b_block = buf;
      }
      if (m0 < m1) RowsTimesBlock(p, plan, m0, m1, jc, nc, k0, kc, b_block, k0 == 0 ? p.beta : 1.0f);
    }
  }
}

// C = beta * C (a product with k = 0).
void ScaleC(const Problem& p) {
  for (int64_t i = 0; i < p.m; i++) {
    float* row = p.c + i * p.ldc;
    if (p.beta == 0.0f) std::memset(row, 0, sizeof(float) * static_cast<size_t>(p.n));
    else if (p.beta != 1.0f)
      for (int64_t j = 0; j < p.n; j++) row[j] *= p.beta;
  }
}

double Flops(const Problem& p) { return 2.0 * static_cast<double>(p.m) * static_cast<double>(p.n) * p.k; }

}  // namespace

Plan MakePlan(const KernelSet& ks, Type compute, int64_t k) {
  Plan plan;
  plan.kernels = &ks;
  const bool pairs = compute == Type::kBF16 && ks.bf16 != nullptr;
  plan.mr = pairs ? ks.bf16_mr : ks.mr;
  plan.nr = pairs ? ks.bf16_nr : ks.nr;
  if (pairs) plan.bf16 = ks.bf16;
  else plan.f32 = ks.f32;
  // Equal K blocks of at most kc, rounded up to even so that bf16 pairs never straddle two blocks.
  const int64_t kc_max = pairs ? ks.kc_bf16 : ks.kc;
  const int64_t blocks = std::max<int64_t>(1, (k + kc_max - 1) / kc_max);
  plan.kc = ((k + blocks - 1) / blocks + 1) / 2 * 2;
  plan.mc = std::max<int64_t>(plan.mr, ks.mc / plan.mr * plan.mr);
  plan.nc = std::max<int64_t>(plan.nr, ks.nc / plan.nr * plan.nr);
  plan.a_format = pairs ? PackFormat::kBf16Pairs : compute == Type::kBF16 ? PackFormat::kF32Rounded : PackFormat::kF32;
  plan.b_format = plan.a_format;
  return plan;
}


void BuiltinGemm(const Problem& p, const KernelSet& kernels, const PackedUse* use) {
  if (p.m <= 0 || p.n <= 0) return;
  if (p.k <= 0) {
    ScaleC(p);
    return;
  }
  const Plan plan = MakePlan(kernels, use != nullptr ? use->packed->compute : p.compute, p.k);
  const int64_t row_panels = Panels(p.m, plan.mr), col_panels = Panels(p.n, plan.nr);
  int64_t threads = InParallelRegion() ? 1 : Threads();
  threads = std::min<int64_t>(threads, std::max<int64_t>(1, static_cast<int64_t>(Flops(p) / kMinFlopsPerThread)));
  threads = std::min(threads, std::max(row_panels, col_panels));
  if (threads <= 1) {
    RunRegion(p, plan, use, 0, p.m, 0, p.n);
    return;
  }
  if (row_panels >= threads) {
    // The usual case: rows split, each B block packed once by the team.
    const int64_t block = BlockBytes(plan, std::min(plan.nc, p.n), plan.kc);
    char* base = static_cast<char*>(tShared.Get(static_cast<size_t>(2 * block)));
    char* const shared[2] = {base, base + block};
    Barrier barrier;
    RunTeam(static_cast<int>(threads), [&](int rank, int size) {
      barrier.SetSize(size);  // 1 when the pool was busy after all
      RunTeamMember(p, plan, use, rank, size, barrier, shared);
    });
    return;
  }
  // Few rows (m below mr per thread): columns split, each member packing its own (small) A and its B.
  RunTeam(static_cast<int>(threads), [&](int rank, int size) {
    const int64_t lo = col_panels * rank / size, hi = col_panels * (rank + 1) / size;
    RunRegion(p, plan, use, 0, p.m, lo * plan.nr, std::min(p.n, hi * plan.nr));
  });
}

Problem BatchEntry(const Problem& p, int64_t i, const int64_t* a_offsets, const int64_t* b_offsets,
                   const int64_t* c_offsets) {
  Problem q = p;
  const auto move = [](const void* data, Type type, int64_t offset) -> const void* {
    return static_cast<const char*>(data) + offset * (type == Type::kBF16 ? 2 : 4);
  };
  q.a.data = move(p.a.data, p.a.type, a_offsets[i]);
  q.b.data = move(p.b.data, p.b.type, b_offsets[i]);
  q.c = p.c + c_offsets[i];
  return q;
}

bool BatchInParallel(const Problem& p, int64_t batch) {
  return batch > 1 && !InParallelRegion() && Threads() > 1 && Flops(p) < kMaxFlopsPerParallelEntry;
}

void BuiltinGemmBatched(const Problem& p, int64_t batch, const int64_t* a_offsets, const int64_t* b_offsets,
                        const int64_t* c_offsets, const KernelSet& kernels) {
  if (BatchInParallel(p, batch)) {
    Run(static_cast<int>(batch), [&](int i, int) {
      BuiltinGemm(BatchEntry(p, i, a_offsets, b_offsets, c_offsets), kernels, nullptr);
    });
    return;
  }
  for (int64_t i = 0; i < batch; i++) BuiltinGemm(BatchEntry(p, i, a_offsets, b_offsets, c_offsets), kernels, nullptr);
}

}  // namespace gemm
}  // namespace prefkit
