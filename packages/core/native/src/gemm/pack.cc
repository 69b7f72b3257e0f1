// Packing (see pack.h): plain C++ loops, or the kernel set's vector packers where they apply, chosen
// by which of the two strides is 1 so that reads run along contiguous memory.
#include "pack.h"

#include <cstring>

#include "bf16.h"

namespace prefkit {
namespace gemm {
namespace {

inline float Widen(float x) { return x; }
inline float Widen(uint16_t x) { return Bf16ToFloat(x); }
inline float RoundedWiden(float x) { return Bf16ToFloat(FloatToBf16(x)); }
inline float RoundedWiden(uint16_t x) { return Bf16ToFloat(x); }
inline uint16_t Narrow(float x) { return FloatToBf16(x); }
inline uint16_t Narrow(uint16_t x) { return x; }

struct WidenOp {
  template <typename In>
  float operator()(In x) const { return Widen(x); }
};
struct RoundOp {
  template <typename In>
  float operator()(In x) const { return RoundedWiden(x); }
};
struct NarrowOp {
  template <typename In>
  uint16_t operator()(In x) const { return Narrow(x); }
};

// Sources whose k runs along memory (A not transposed, B transposed) are packed panel by panel: each
// panel is a transpose of `width` rows. Sources whose lanes run along memory are packed k by k across
// all the block's panels, so that each row of the source is read once, front to back.

// One panel, k along memory: dst[d * width + l] = op(src[l * ls + d]); lanes past `lanes` are zero.
template <typename In, typename Out, typename Op>
void PanelAlongK(const In* src, int64_t ls, int lanes, int64_t depth, int width, Out* dst, Op op) {
  if (lanes < width) std::memset(dst, 0, sizeof(Out) * static_cast<size_t>(depth) * width);
  for (int l = 0; l < lanes; l++) {
    const In* row = src + l * ls;
    for (int64_t d = 0; d < depth; d++) dst[d * width + l] = op(row[d]);
  }
}

// One bf16-pair panel, k along memory: dst[p * width + l] = bf16(src(l, 2p)) | bf16(src(l, 2p + 1)) << 16.
template <typename In>
void PairPanelAlongK(const In* src, int64_t ls, int lanes, int64_t depth, int width, uint32_t* dst) {
  const int64_t pairs = (depth + 1) / 2, full = depth / 2;
  if (lanes < width) std::memset(dst, 0, sizeof(uint32_t) * static_cast<size_t>(pairs) * width);
  for (int l = 0; l < lanes; l++) {
    const In* row = src + l * ls;
    for (int64_t p = 0; p < full; p++)
      dst[p * width + l] = Narrow(row[2 * p]) | static_cast<uint32_t>(Narrow(row[2 * p + 1])) << 16;
    if (full < pairs) dst[full * width + l] = Narrow(row[2 * full]);
  }
}

// A block, lanes along memory: for each k, the lanes of every panel in turn.
template <typename In, typename Out, typename Op>
void BlockAlongLanes(const In* src, int64_t ds, int64_t lanes, int64_t depth, int width, Out* dst, Op op) {
  const int64_t panels = (lanes + width - 1) / width;
  for (int64_t d = 0; d < depth; d++) {
    const In* row = src + d * ds;
    for (int64_t panel = 0; panel < panels; panel++) {
      Out* out = dst + (panel * depth + d) * width;
      const int64_t l0 = panel * width;
      const int n = static_cast<int>(lanes - l0 < width ? lanes - l0 : width);
      for (int l = 0; l < n; l++) out[l] = op(row[l0 + l]);
      for (int l = n; l < width; l++) out[l] = Out(0);
    }
  }
}

// The same into bf16 pairs.
template <typename In>
void PairBlockAlongLanes(const In* src, int64_t ds, int64_t lanes, int64_t depth, int width, uint32_t* dst) {
  const int64_t pairs = (depth + 1) / 2;
  const int64_t panels = (lanes + width - 1) / width;
  for (int64_t p = 0; p < pairs; p++) {
    const In* even = src + 2 * p * ds;
    const In* odd = 2 * p + 1 < depth ? even + ds : nullptr;
    for (int64_t panel = 0; panel < panels; panel++) {
      uint32_t* out = dst + (panel * pairs + p) * width;
      const int64_t l0 = panel * width;
      const int n = static_cast<int>(lanes - l0 < width ? lanes - l0 : width);
      for (int l = 0; l < n; l++) {
        const uint32_t hi = odd != nullptr ? Narrow(odd[l0 + l]) : 0u;
        out[l] = Narrow(even[l0 + l]) | hi << 16;
      }
      for (int l = n; l < width; l++) out[l] = 0;
    }
  }
}

// The kernel set's packers for fp32 sources. False: none applies.
bool FastBlock(const float* src, const PackSource& s, int64_t lanes, int64_t depth, int width, PackFormat format,
               const KernelSet& ks, char* out) {
  if (s.lane_stride == 1) {
    if (format != PackFormat::kBf16Pairs || ks.pack_pairs_lanes == nullptr) return false;
    ks.pack_pairs_lanes(src, s.depth_stride, depth, lanes, width, reinterpret_cast<uint32_t*>(out));
    return true;
  }
  return false;
}
bool FastBlock(const uint16_t*, const PackSource&, int64_t, int64_t, int, PackFormat, const KernelSet&, char*) {
  return false;
}

// The transposing packers take full panels of fp32 with k along memory.
bool FastPanel(const float* src, const PackSource& s, int n, int64_t depth, int width, PackFormat format,
               const KernelSet& ks, char* out) {
  if (n != width || width % 8 != 0) return false;
  if (format == PackFormat::kF32 && ks.pack_f32 != nullptr) {
    ks.pack_f32(src, s.lane_stride, depth, width, reinterpret_cast<float*>(out));
    return true;
  }
  if (format == PackFormat::kBf16Pairs && ks.pack_pairs != nullptr) {
    ks.pack_pairs(src, s.lane_stride, depth, width, reinterpret_cast<uint32_t*>(out));
    return true;
  }
  return false;
}
bool FastPanel(const uint16_t*, const PackSource&, int, int64_t, int, PackFormat, const KernelSet&, char*) {
  return false;
}

template <typename In>
void PackTyped(const In* base, const PackSource& s, int64_t lane0, int64_t lanes, int64_t depth0, int64_t depth,
               int width, PackFormat format, const KernelSet& ks, void* dst) {
  const In* src = base + lane0 * s.lane_stride + depth0 * s.depth_stride;
  char* out = static_cast<char*>(dst);
  if (s.lane_stride == 1) {
    if (FastBlock(src, s, lanes, depth, width, format, ks, out)) return;
    const int64_t ds = s.depth_stride;
    switch (format) {
      case PackFormat::kF32:
        return BlockAlongLanes(src, ds, lanes, depth, width, reinterpret_cast<float*>(out), WidenOp());
      case PackFormat::kF32Rounded:
        return BlockAlongLanes(src, ds, lanes, depth, width, reinterpret_cast<float*>(out), RoundOp());
      case PackFormat::kBf16:
        return BlockAlongLanes(src, ds, lanes, depth, width, reinterpret_cast<uint16_t*>(out), NarrowOp());
      case PackFormat::kBf16Pairs:
        return PairBlockAlongLanes(src, ds, lanes, depth, width, reinterpret_cast<uint32_t*>(out));
    }
  }
  const int64_t panel = PanelBytes(format, depth, width);
  const int64_t ls = s.lane_stride;
  for (int64_t l = 0; l < lanes; l += width, out += panel) {
    const int n = static_cast<int>(lanes - l < width ? lanes - l : width);
    const In* from = src + l * ls;
    if (FastPanel(from, s, n, depth, width, format, ks, out)) continue;
    switch (format) {
      case PackFormat::kF32:
        PanelAlongK(from, ls, n, depth, width, reinterpret_cast<float*>(out), WidenOp());
        break;
      case PackFormat::kF32Rounded:
        PanelAlongK(from, ls, n, depth, width, reinterpret_cast<float*>(out), RoundOp());
        break;
      case PackFormat::kBf16:
        PanelAlongK(from, ls, n, depth, width, reinterpret_cast<uint16_t*>(out), NarrowOp());
        break;
      case PackFormat::kBf16Pairs:
        PairPanelAlongK(from, ls, n, depth, width, reinterpret_cast<uint32_t*>(out));
        break;
    }
  }
}

}  // namespace

int64_t PanelBytes(PackFormat format, int64_t depth, int width) {
  switch (format) {
    case PackFormat::kBf16:
      return depth * width * 2;
    case PackFormat::kBf16Pairs:
      return (depth + 1) / 2 * width * 4;
    default:
      return depth * width * 4;
  }
}

void PackBlock(const PackSource& src, int64_t lane0, int64_t lanes, int64_t depth0, int64_t depth, int width,
               PackFormat format, const KernelSet& kernels, void* dst) {
  if (src.type == Type::kBF16) {
    PackTyped(static_cast<const uint16_t*>(src.data), src, lane0, lanes, depth0, depth, width, format, kernels, dst);
  } else {
    PackTyped(static_cast<const float*>(src.data), src, lane0, lanes, depth0, depth, width, format, kernels, dst);
  }
}

void WidenBf16(const uint16_t* src, int64_t count, float* dst) {
  for (int64_t i = 0; i < count; i++) dst[i] = Bf16ToFloat(src[i]);
}

}  // namespace gemm
}  // namespace prefkit
