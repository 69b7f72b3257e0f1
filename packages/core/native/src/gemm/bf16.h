// bfloat16 <-> float: a bf16 is the upper 16 bits of an IEEE float32.
#pragma once

#include <cstdint>
#include <cstring>

namespace prefkit {
namespace gemm {

// Round to nearest, ties to even (as torch's .to(torch.bfloat16)); NaNs stay (quiet) NaNs.
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float Bf16ToFloat(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

}  // namespace gemm
}  // namespace prefkit
