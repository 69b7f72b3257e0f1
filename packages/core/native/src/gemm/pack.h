// Packing of A and B panels for the microkernels (layouts in kernels.h).
//
// Both operands are packed the same way, as "lanes" x "depth": A's lanes are its rows i, B's lanes
// its columns j, and the depth is k. A block of `lanes` lanes becomes ceil(lanes / width) micro-panels
// of `width` lanes each, back to back, zero-padded past the edge.
#pragma once

#include <cstdint>

#include "gemm.h"
#include "kernels.h"

namespace prefkit {
namespace gemm {

enum class PackFormat {
  kF32,         // float per element (bf16 sources widened exactly)
  kF32Rounded,  // float per element, fp32 sources first rounded to bf16 (bf16 products on an fp32 kernel)
  kBf16,        // bf16 per element in the kF32 order (pre-packed weights kept at 2 bytes, widened per block)
  kBf16Pairs,   // a 32-bit word per lane and k-pair, for vdpbf16ps
};

// Element (lane, depth) of an operand is data[lane * lane_stride + depth * depth_stride].
struct PackSource {
  const void* data;
  Type type;
  int64_t lane_stride, depth_stride;
};

// Bytes of one micro-panel of `width` lanes and `depth` k.
int64_t PanelBytes(PackFormat format, int64_t depth, int width);

// Packs lanes [lane0, lane0 + lanes) x depth [depth0, depth0 + depth) of `src` into dst (64-byte
// aligned), with the kernel set's fast packers where they apply.
void PackBlock(const PackSource& src, int64_t lane0, int64_t lanes, int64_t depth0, int64_t depth, int width,
               PackFormat format, const KernelSet& kernels, void* dst);

// dst[i] = float(src[i]): kBf16 panels to kF32 panels.
void WidenBf16(const uint16_t* src, int64_t count, float* dst);

}  // namespace gemm
}  // namespace prefkit
