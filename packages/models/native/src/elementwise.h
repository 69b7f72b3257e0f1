// The fused decoder's elementwise maths: RMSNorm and its backward pass, rotary embeddings, SiLU's
// sigmoid, embedding rows. Plain loops over rows; the callers split work over the pool.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace prefkit {
namespace decoder {

// y = w * x / sqrt(mean(x^2) + eps) over rows of width `dim`; r receives the inverse rms.
inline void RmsNorm(const float* x, const float* w, int rows, int dim, float eps, float* y, float* r) {
  for (int i = 0; i < rows; i++) {
    const float* xi = x + static_cast<size_t>(i) * dim;
    float* yi = y + static_cast<size_t>(i) * dim;
    float ss = 0.0f;
    for (int j = 0; j < dim; j++) ss += xi[j] * xi[j];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    r[i] = inv;
    for (int j = 0; j < dim; j++) yi[j] = xi[j] * inv * w[j];
  }
}

// dx (+)= d/dx of RmsNorm for upstream dy; dw += sum rows dy * x * r (when dw != nullptr).
inline void RmsNormBackward(const float* x, const float* w, const float* r, const float* dy, int rows, int dim,
                            float* dx, bool accumulate, float* dw) {
  for (int i = 0; i < rows; i++) {
    const float* xi = x + static_cast<size_t>(i) * dim;
    const float* dyi = dy + static_cast<size_t>(i) * dim;
    float* dxi = dx + static_cast<size_t>(i) * dim;
    const float ri = r[i];
    float dot = 0.0f;
    for (int j = 0; j < dim; j++) dot += w[j] * dyi[j] * xi[j];
    const float c = ri * ri * ri * dot / static_cast<float>(dim);
    if (accumulate) {
      for (int j = 0; j < dim; j++) dxi[j] += ri * w[j] * dyi[j] - c * xi[j];
    } else {
      for (int j = 0; j < dim; j++) dxi[j] = ri * w[j] * dyi[j] - c * xi[j];
    }
    if (dw != nullptr)
      for (int j = 0; j < dim; j++) dw[j] += dyi[j] * xi[j] * ri;
  }
}

// Rotate rows [N, heads*D] in place: y = x cos + rotate_half(x) sin (forward) or its transpose.
inline void Rope(float* x, int n, int heads, int d, const float* cosT, const float* sinT, bool backward) {
  const int half = d / 2;
  for (int r = 0; r < n; r++) {
    const float* c = cosT + static_cast<size_t>(r) * half;
    const float* s = sinT + static_cast<size_t>(r) * half;
    for (int h = 0; h < heads; h++) {
      float* v = x + static_cast<size_t>(r) * heads * d + static_cast<size_t>(h) * d;
      for (int j = 0; j < half; j++) {
        const float a = v[j], b = v[j + half];
        if (!backward) {
          v[j] = a * c[j] - b * s[j];
          v[j + half] = b * c[j] + a * s[j];
        } else {
          v[j] = a * c[j] + b * s[j];
          v[j + half] = b * c[j] - a * s[j];
        }
      }
    }
  }
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Row `id` of an embedding table [vocab, dim] into `dst`: float32 values, or with `bf16` the table's
// bf16 bits (a float32 pointer to uint16 data) widened exactly.
inline void GatherRow(const float* table, bool bf16, int id, int dim, float* dst) {
  if (!bf16) {
    std::memcpy(dst, table + static_cast<size_t>(id) * dim, sizeof(float) * dim);
    return;
  }
  const uint16_t* row = reinterpret_cast<const uint16_t*>(table) + static_cast<size_t>(id) * dim;
  for (int j = 0; j < dim; j++) {
    const uint32_t u = static_cast<uint32_t>(row[j]) << 16;
    std::memcpy(dst + j, &u, sizeof(float));
  }
}

}  // namespace decoder
}  // namespace prefkit
