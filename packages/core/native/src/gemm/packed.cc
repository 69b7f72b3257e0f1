// Pre-packed B operands (packed.h): packing once (and again in place, for a trainable weight's per-step
// copy), products with the pack as it is, and products with its transpose, whose panels are derived per
// block from the same pack. So a frozen weight W [out, in] needs one pack for both products of a linear
// layer: y = x·Wᵀ uses op(B) = Wᵀ as packed, dx = dy·W its transpose. Deriving is a pass over the
// weight per product, against the 2·rows·k·n flops of the product it feeds.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bf16.h"
#include "packed.h"
#include "pool.h"

namespace prefkit {
namespace gemm {
namespace {

PackSource SourceOf(const Operand& b) { return {b.data, b.type, b.trans ? b.ld : 1, b.trans ? 1 : b.ld}; }

// The pack's format for products in `compute`: the plan's, kept at 2 bytes per element when the source or
// the products are bf16 (widened per block when the microkernel takes fp32).
PackFormat FormatOf(const Plan& plan, Type source, Type compute) {
  if (plan.b_format != PackFormat::kBf16Pairs && (compute == Type::kBF16 || source == Type::kBF16)) {
    return PackFormat::kBf16;
  }
  return plan.b_format;
}

// Writes op(B) into pb's panels: blocks of columns in parallel, each panel written by exactly one thread.
void PackInto(PackedB& pb, const Operand& b) {
  const PackSource src = SourceOf(b);
  const int64_t col_panels = Panels(pb.n, pb.nr);
  const int64_t chunk = std::max<int64_t>(1, (col_panels + 63) / 64);
  Run(static_cast<int>((col_panels + chunk - 1) / chunk), [&](int t, int) {
    const int64_t j0 = t * chunk * pb.nr;
    const int64_t cols = std::min(pb.n - j0, chunk * pb.nr);
    for (int64_t k0 = 0; k0 < pb.k; k0 += pb.kc) {
      const int64_t kc = std::min(pb.kc, pb.k - k0);
      char* dst = pb.data + PackedBlockOffset(pb, k0 / pb.kc) + j0 / pb.nr * PanelBytes(pb.format, kc, pb.nr);
      PackBlock(src, j0, cols, k0, kc, pb.nr, pb.format, *pb.kernels, dst);
    }
  });
}

// Element (kk, nn) of op(B) from a pack, widened to float.
inline float PackedElement(const PackedB& pb, int64_t kk, int64_t nn) {
  const int64_t kb = kk / pb.kc, d = kk - kb * pb.kc;
  const int64_t depth = std::min(pb.kc, pb.k - kb * pb.kc);
  const char* panel = pb.data + PackedBlockOffset(pb, kb) + nn / pb.nr * PanelBytes(pb.format, depth, pb.nr);
  const int64_t lane = nn % pb.nr;
  switch (pb.format) {
    case PackFormat::kBf16Pairs: {
      const uint32_t word = reinterpret_cast<const uint32_t*>(panel)[d / 2 * pb.nr + lane];
      return Bf16ToFloat(static_cast<uint16_t>(d % 2 == 0 ? word : word >> 16));
    }
    case PackFormat::kBf16:
      return Bf16ToFloat(reinterpret_cast<const uint16_t*>(panel)[d * pb.nr + lane]);
    default:
      return reinterpret_cast<const float*>(panel)[d * pb.nr + lane];
  }
}

// bf16 pairs to bf16 pairs, the products of the AVX512_BF16 kernel. Lanes come in pairs (kk, kk + 1),
// which share each 32-bit word of the pack; two adjacent words (columns nn, nn + 1 of one panel, nn even)
// hold [a b c d] = [(kk, nn) (kk+1, nn) (kk, nn+1) (kk+1, nn+1)], and the target's words for lanes kk and
// kk + 1 at the k-pair (nn, nn + 1) are [a c] and [b d]: one 16-bit swap in a 64-bit word. Past the
// source's edge the pack holds zeros, so no lane or depth needs a mask.
void DerivePairs(const PackedB& pb, int64_t jc, int64_t nc, int64_t k0, int64_t kc, int64_t p0, int64_t p1, int nr,
                 char* block) {
  const int64_t pairs = (kc + 1) / 2;
  const int64_t panel_words = pairs * nr;
  constexpr int64_t kChunk = 32;  // k-pairs per pass, so that the target rows stay in L1
  for (int64_t p = p0; p < p1; p++) {
    uint64_t* out = reinterpret_cast<uint64_t*>(reinterpret_cast<uint32_t*>(block) + p * panel_words);
    const int64_t lane0 = jc + p * nr;
    const int lanes = static_cast<int>(std::min<int64_t>(nr, jc + nc - lane0));
    // Source rows of each lane pair: the pack's word row of k-pair kk / 2 in its K block, and the stride
    // between the block's panels.
    const uint32_t* row[64];
    int64_t stride[64];
    for (int l = 0; l < nr; l += 2) {
      const int64_t kk = lane0 + l;
      if (l >= lanes || kk >= pb.k) {
        row[l / 2] = nullptr;
        continue;
      }
      const int64_t kb = kk / pb.kc, d = kk - kb * pb.kc;
      const int64_t depth = std::min(pb.kc, pb.k - kb * pb.kc);
      stride[l / 2] = PanelBytes(pb.format, depth, pb.nr) / 4;
      row[l / 2] = reinterpret_cast<const uint32_t*>(pb.data + PackedBlockOffset(pb, kb)) + d / 2 * pb.nr;
    }
    for (int64_t q0 = 0; q0 < pairs; q0 += kChunk) {
      const int64_t q1 = std::min(pairs, q0 + kChunk);
      for (int l = 0; l < nr; l += 2) {
        const uint32_t* src = row[l / 2];
        if (src == nullptr) {
          for (int64_t q = q0; q < q1; q++) out[(q * nr + l) / 2] = 0;
          continue;
        }
        for (int64_t q = q0; q < q1; q++) {
          const int64_t nn = k0 + 2 * q;
          const int64_t jp = nn / pb.nr, lane = nn - jp * pb.nr;
          uint64_t x;
          std::memcpy(&x, src + jp * stride[l / 2] + lane, sizeof(x));
          out[(q * nr + l) / 2] = (x & 0xFFFF00000000FFFFull) | ((x >> 16) & 0x00000000FFFF0000ull) |
                                  ((x << 16) & 0x0000FFFF00000000ull);
        }
      }
    }
  }
}

// A 16-bit or fp32 pack ([depth][lane] per panel) to fp32 panels, the fp32 kernels' products (fp32 compute
// on a bf16 or fp16 pack, and bf16 compute on CPUs without AVX512_BF16): target (d, l) is the pack's
// element (lane0 + l, k0 + d), read along the pack's row of lane0 + l, in chunks of depth that keep the
// target rows in L1.
template <typename Source>
void DeriveFloats(const PackedB& pb, int64_t jc, int64_t nc, int64_t k0, int64_t kc, int64_t p0, int64_t p1, int nr,
                  char* block) {
  constexpr int64_t kChunk = 64;
  const int64_t panel_floats = kc * nr;
  for (int64_t p = p0; p < p1; p++) {
    float* out = reinterpret_cast<float*>(block) + p * panel_floats;
    const int64_t lane0 = jc + p * nr;
    const int64_t lanes = std::min<int64_t>(nr, std::min(jc + nc, pb.k) - lane0);
    for (int64_t d0 = 0; d0 < kc; d0 += kChunk) {
      const int64_t d1 = std::min(kc, d0 + kChunk);
      for (int64_t l = 0; l < nr; l++) {
        if (l >= lanes) {
          for (int64_t d = d0; d < d1; d++) out[d * nr + l] = 0.0f;
          continue;
        }
        const int64_t kk = lane0 + l, kb = kk / pb.kc, dk = kk - kb * pb.kc;
        const int64_t stride = PanelBytes(pb.format, std::min(pb.kc, pb.k - kb * pb.kc), pb.nr) / sizeof(Source);
        const Source* row = reinterpret_cast<const Source*>(pb.data + PackedBlockOffset(pb, kb)) + dk * pb.nr;
        for (int64_t d = d0; d < d1; d++) {
          const int64_t nn = k0 + d, jp = nn / pb.nr;
          const Source x = row[jp * stride + (nn - jp * pb.nr)];
          if constexpr (sizeof(Source) == 2) out[d * nr + l] = Bf16ToFloat(x);
          else out[d * nr + l] = x;
        }
      }
    }
  }
}

// Any other pair of formats, element by element.
void DeriveGeneric(const PackedB& pb, int64_t jc, int64_t nc, int64_t k0, int64_t kc, int64_t p0, int64_t p1,
                   PackFormat format, int nr, char* block) {
  const int64_t panel_bytes = PanelBytes(format, kc, nr);
  for (int64_t p = p0; p < p1; p++) {
    char* out = block + p * panel_bytes;
    const int64_t lane0 = jc + p * nr;
    const int64_t lanes = std::min<int64_t>(nr, std::min(jc + nc, pb.k) - lane0);
    if (format == PackFormat::kBf16Pairs) {
      auto* words = reinterpret_cast<uint32_t*>(out);
      std::memset(words, 0, static_cast<size_t>(panel_bytes));
      for (int64_t l = 0; l < lanes; l++) {
        for (int64_t d = 0; d < kc; d++) {
          const uint32_t h = FloatToBf16(PackedElement(pb, lane0 + l, k0 + d));
          words[d / 2 * nr + l] |= d % 2 == 0 ? h : h << 16;
        }
      }
    } else if (format == PackFormat::kBf16) {
      auto* halves = reinterpret_cast<uint16_t*>(out);
      std::memset(halves, 0, static_cast<size_t>(panel_bytes));
      for (int64_t l = 0; l < lanes; l++)
        for (int64_t d = 0; d < kc; d++) halves[d * nr + l] = FloatToBf16(PackedElement(pb, lane0 + l, k0 + d));
    } else {
      // kF32, or kF32Rounded: the pack holds bf16 values already (rounding them again changes nothing) or
      // is an fp32 pack for fp32 products.
      auto* floats = reinterpret_cast<float*>(out);
      std::memset(floats, 0, static_cast<size_t>(panel_bytes));
      for (int64_t l = 0; l < lanes; l++)
        for (int64_t d = 0; d < kc; d++) floats[d * nr + l] = PackedElement(pb, lane0 + l, k0 + d);
    }
  }
}

}  // namespace

void DeriveTransposedPanels(const PackedB& pb, int64_t jc, int64_t nc, int64_t k0, int64_t kc, int64_t p0,
                            int64_t p1, PackFormat format, int nr, char* block) {
  const bool floats = format == PackFormat::kF32 || format == PackFormat::kF32Rounded;
  if (pb.format == PackFormat::kBf16Pairs && format == PackFormat::kBf16Pairs && nr % 2 == 0 && nr <= 128 &&
      pb.kc % 2 == 0) {
    DerivePairs(pb, jc, nc, k0, kc, p0, p1, nr, block);
  } else if (floats && pb.format == PackFormat::kBf16) {
    // A bf16 pack holds bf16 values: rounding them again (kF32Rounded) changes nothing.
    DeriveFloats<uint16_t>(pb, jc, nc, k0, kc, p0, p1, nr, block);
  } else if (format == PackFormat::kF32 && pb.format == PackFormat::kF32) {
    DeriveFloats<float>(pb, jc, nc, k0, kc, p0, p1, nr, block);
  } else {
    DeriveGeneric(pb, jc, nc, k0, kc, p0, p1, format, nr, block);
  }
}

PackedB* PackB(const Operand& b, int64_t k, int64_t n, Type compute, Isa isa) {
  const KernelSet& kernels = Kernels(isa);
  const Plan plan = MakePlan(kernels, compute, k);
  const PackFormat format = FormatOf(plan, b.type, compute);
  const int64_t col_panels = Panels(n, plan.nr);
  int64_t bytes = 0;
  for (int64_t k0 = 0; k0 < k; k0 += plan.kc) bytes += col_panels * PanelBytes(format, std::min(plan.kc, k - k0), plan.nr);
  auto* packed = new PackedB{&kernels, compute, k, n, format, plan.kc, plan.nr, bytes, nullptr};
  const size_t allocated = static_cast<size_t>((std::max<int64_t>(bytes, 1) + 63) / 64 * 64);
  packed->data = static_cast<char*>(std::aligned_alloc(64, allocated));
  if (packed->data == nullptr) {
    delete packed;
    return nullptr;
  }
  PackInto(*packed, b);
  return packed;
}

bool RepackB(PackedB* packed, const Operand& b) {
  if (packed == nullptr || FormatOf(MakePlan(*packed->kernels, packed->compute, packed->k), b.type, packed->compute) !=
                               packed->format)
    return false;
  PackInto(*packed, b);
  return true;
}

bool UnpackB(const PackedB& pb, void* out, Type type, bool trans, int64_t ld) {
  if (type == Type::kBF16 && pb.format == PackFormat::kF32) return false;
  Run(static_cast<int>(std::min<int64_t>(pb.k, 64)), [&](int t, int) {
    for (int64_t kk = pb.k * t / std::min<int64_t>(pb.k, 64); kk < pb.k * (t + 1) / std::min<int64_t>(pb.k, 64); kk++) {
      for (int64_t nn = 0; nn < pb.n; nn++) {
        const float x = PackedElement(pb, kk, nn);
        const int64_t at = trans ? nn * ld + kk : kk * ld + nn;
        if (type == Type::kBF16) static_cast<uint16_t*>(out)[at] = FloatToBf16(x);
        else static_cast<float*>(out)[at] = x;
      }
    }
  });
  return true;
}

void FreePackedB(PackedB* packed) {
  if (packed == nullptr) return;
  std::free(packed->data);
  delete packed;
}

int64_t PackedBBytes(const PackedB& packed) { return packed.bytes; }
int64_t PackedBRows(const PackedB& packed) { return packed.k; }
int64_t PackedBCols(const PackedB& packed) { return packed.n; }

void GemmPacked(int64_t m, const Operand& a, const PackedB& b, float alpha, float beta, float* c, int64_t ldc,
                bool transposed) {
  Problem p;
  p.m = m;
  p.n = transposed ? b.k : b.n;
  p.k = transposed ? b.n : b.k;
  p.a = a;
  p.c = c;
  p.ldc = ldc;
  p.alpha = alpha;
  p.beta = beta;
  p.compute = b.compute;
  const PackedUse use = {&b, transposed};
  BuiltinGemm(p, *b.kernels, &use);
}

}  // namespace gemm
}  // namespace prefkit
