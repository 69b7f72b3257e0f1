// Packing (see pack.h): plain C++ loops, chosen by which of the two strides is 1 so that reads run
// along contiguous memory.
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

// dst[d * width + l] = op(src(l, d)); lanes past `lanes` are zero.
template <typename In, typename Out, typename Op>
void PackPanel(const In* src, int64_t ls, int64_t ds, int lanes, int64_t depth, int width, Out* dst, Op op) {
  if (lanes < width) std::memset(dst, 0, sizeof(Out) * static_cast<size_t>(depth) * width);
  if (ds == 1) {
    for (int l = 0; l < lanes; l++) {
      const In* row = src + l * ls;
      for (int64_t d = 0; d < depth; d++) dst[d * width + l] = op(row[d]);
    }
  } else {
    for (int64_t d = 0; d < depth; d++) {
      const In* col = src + d * ds;
      Out* out = dst + d * width;
      if (ls == 1) {
        for (int l = 0; l < lanes; l++) out[l] = op(col[l]);
      } else {
        for (int l = 0; l < lanes; l++) out[l] = op(col[l * ls]);
      }
    }
  }
}

// dst[p * width + l] = bf16(src(l, 2p)) | bf16(src(l, 2p + 1)) << 16; missing lanes and k are zero.
template <typename In>
void PackPanelPairs(const In* src, int64_t ls, int64_t ds, int lanes, int64_t depth, int width, uint32_t* dst) {
  const int64_t pairs = (depth + 1) / 2, full = depth / 2;
  if (lanes < width || full < pairs) std::memset(dst, 0, sizeof(uint32_t) * static_cast<size_t>(pairs) * width);
  if (ds == 1) {
    for (int l = 0; l < lanes; l++) {
      const In* row = src + l * ls;
      for (int64_t p = 0; p < full; p++)
        dst[p * width + l] = Narrow(row[2 * p]) | static_cast<uint32_t>(Narrow(row[2 * p + 1])) << 16;
      if (full < pairs) dst[full * width + l] = Narrow(row[2 * full]);
    }
  } else {
    for (int64_t p = 0; p < pairs; p++) {
      const In* even = src + 2 * p * ds;
      const In* odd = even + ds;
      uint32_t* out = dst + p * width;
      if (p < full && ls == 1) {
        for (int l = 0; l < lanes; l++) out[l] = Narrow(even[l]) | static_cast<uint32_t>(Narrow(odd[l])) << 16;
      } else if (p < full) {
        for (int l = 0; l < lanes; l++)
          out[l] = Narrow(even[l * ls]) | static_cast<uint32_t>(Narrow(odd[l * ls])) << 16;
      } else {
        for (int l = 0; l < lanes; l++) out[l] = Narrow(even[l * ls]);
      }
    }
  }
}

// The kernel set's transposing packers take full panels of fp32 whose k runs along memory.
bool FastPanel(const float* src, const PackSource& s, int n, int64_t depth, int width, PackFormat format,
               const KernelSet& ks, char* out) {
  if (s.depth_stride != 1 || n != width || width % 8 != 0) return false;
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
  char* out = static_cast<char*>(dst);
  const int64_t panel = PanelBytes(format, depth, width);
  for (int64_t l = 0; l < lanes; l += width) {
    const int n = static_cast<int>(lanes - l < width ? lanes - l : width);
    const In* src = base + (lane0 + l) * s.lane_stride + depth0 * s.depth_stride;
    if (FastPanel(src, s, n, depth, width, format, ks, out)) {
      out += panel;
      continue;
    }
    switch (format) {
      case PackFormat::kF32:
        PackPanel(src, s.lane_stride, s.depth_stride, n, depth, width, reinterpret_cast<float*>(out), WidenOp());
        break;
      case PackFormat::kF32Rounded:
        PackPanel(src, s.lane_stride, s.depth_stride, n, depth, width, reinterpret_cast<float*>(out), RoundOp());
        break;
      case PackFormat::kBf16:
        PackPanel(src, s.lane_stride, s.depth_stride, n, depth, width, reinterpret_cast<uint16_t*>(out), NarrowOp());
        break;
      case PackFormat::kBf16Pairs:
        PackPanelPairs(src, s.lane_stride, s.depth_stride, n, depth, width, reinterpret_cast<uint32_t*>(out));
        break;
    }
    out += panel;
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
