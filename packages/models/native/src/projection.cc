// A projection y = x W^T + b with its optional LoRA adapter (PEFT's `y += scale * (dropout(x) A^T) B^T`),
// forward and backward, every product through the engine's GEMM.
#include "projection.h"

#include <algorithm>

#include "engine.h"
#include "layout.h"
#include "profiler.h"

namespace prefkit {
namespace decoder {
namespace {

// The weight of (layer, proj): its pack, or the fp32 array w.
const PackedWeight* PackOf(const Context& c, int layer, int proj) {
  return LayerPack(c, layer, layout::kProjection[proj].weight);
}

// A decode prefill of at most this many rows (a short prompt of a small batch) runs its fp32 projections
// on the decoding kernel, which reads each weight once in place, rather than packing it for the GEMM.
constexpr int kPrefillGemvRows = 32;

void Linear(const Context& c, const PackedWeight* pack, const float* x, const float* w, const float* b, int n, int in,
            int out, float* y) {
  const int prev = profiler::Current();
  profiler::Enter(profiler::kFwdGemm);
  if (pack != nullptr) engine::GemmPacked(n, x, in, pack->packed, false, 1.0f, 0.0f, y, out);
  else if (c.kvSink != nullptr && c.compute == PREFKIT_F32 && n <= kPrefillGemvRows)
    engine::Gemv(n, out, in, x, in, w, 0.0f, y, out);
  else engine::Gemm(engine::kNoTrans, engine::kTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out, c.compute);
  if (b != nullptr) {
    for (int r = 0; r < n; r++) {
      float* row = y + static_cast<size_t>(r) * out;
      for (int j = 0; j < out; j++) row[j] += b[j];
    }
  }
  profiler::Enter(prev);
}

// dx (+)= dy . W (the pack used transposed) ; dW = dy^T . x ; db = sum rows dy.
void LinearBackward(const Context& c, const PackedWeight* pack, const float* x, const float* w, const float* dy, int n,
                    int in, int out, float* dx, float dxBeta, float* dw, float* db) {
  const int prev = profiler::Current();
  profiler::Enter(profiler::kBwdGemm);
  if (dx != nullptr) {
    if (pack != nullptr) engine::GemmPacked(n, dy, out, pack->packed, true, 1.0f, dxBeta, dx, in);
    else engine::Gemm(engine::kNoTrans, engine::kNoTrans, n, in, out, 1.0f, dy, out, w, in, dxBeta, dx, in, c.compute);
  }
  if (dw != nullptr)
    engine::Gemm(engine::kTrans, engine::kNoTrans, out, in, n, 1.0f, dy, out, x, in, 0.0f, dw, in, c.compute);
  if (db != nullptr) {
    std::fill(db, db + out, 0.0f);
    for (int r = 0; r < n; r++) {
      const float* row = dy + static_cast<size_t>(r) * out;
      for (int j = 0; j < out; j++) db[j] += row[j];
    }
  }
  profiler::Enter(prev);
}

const LoraSlot* Adapter(const Context& c, int layer, int proj) {
  if (c.lora.empty()) return nullptr;
  const LoraSlot& l = c.lora[static_cast<size_t>(layer) * layout::kProjections + proj];
  return l.a != nullptr ? &l : nullptr;
}

// mask * x into c.loraTmp (or x itself without a mask).
const float* Masked(Context& c, const LoraSlot& l, const float* x, size_t count) {
  if (l.mask == nullptr) return x;
  if (c.loraTmp.size() < count) c.loraTmp.resize(count);
  for (size_t i = 0; i < count; i++) c.loraTmp[i] = x[i] * l.mask[i];
  return c.loraTmp.data();
}

}  // namespace

// A projection with its optional LoRA update (forward); keeps (mask * x) A^T for the backward pass.
void Project(Context& c, LayerSaved& s, int layer, int proj, const float* x, const float* w, const float* b, int n,
             int in, int out, float* y) {
  Linear(c, PackOf(c, layer, proj), x, w, b, n, in, out, y);
  const LoraSlot* l = Adapter(c, layer, proj);
  if (l == nullptr) return;
  const int prev = profiler::Current();
  profiler::Enter(profiler::kFwdGemm);
  const float* xm = Masked(c, *l, x, static_cast<size_t>(n) * in);
  std::vector<float>& low = s.low[proj];
  low.resize(static_cast<size_t>(n) * l->rank);
  engine::Gemm(engine::kNoTrans, engine::kTrans, n, l->rank, in, 1.0f, xm, in, l->a, in, 0.0f, low.data(), l->rank,
               c.compute);
  engine::Gemm(engine::kNoTrans, engine::kTrans, n, out, l->rank, l->scale, low.data(), l->rank, l->b, l->rank, 1.0f,
               y, out, c.compute);
  profiler::Enter(prev);
}

// Backward of Project: the base projection's gradients, then the adapter's (dB, dA, and its part of dx).
void ProjectBackward(Context& c, LayerSaved& s, int layer, int proj, const float* x, const float* w, const float* dy,
                     int n, int in, int out, float* dx, float dxBeta, float* dw, float* db) {
  LinearBackward(c, PackOf(c, layer, proj), x, w, dy, n, in, out, dx, dxBeta, dw, db);
  const LoraSlot* l = Adapter(c, layer, proj);
  if (l == nullptr) return;
  const int prev = profiler::Current();
  profiler::Enter(profiler::kBwdGemm);
  const int r = l->rank;
  const size_t nr = static_cast<size_t>(n) * r;
  if (c.loraDlow.size() < nr) c.loraDlow.resize(nr);
  float* dlow = c.loraDlow.data();
  if (l->db != nullptr)
    engine::Gemm(engine::kTrans, engine::kNoTrans, out, r, n, l->scale, dy, out, s.low[proj].data(), r, 0.0f, l->db,
                 r, c.compute);
  engine::Gemm(engine::kNoTrans, engine::kNoTrans, n, r, out, l->scale, dy, out, l->b, r, 0.0f, dlow, r, c.compute);
  if (l->da != nullptr) {
    const float* xm = Masked(c, *l, x, static_cast<size_t>(n) * in);
    engine::Gemm(engine::kTrans, engine::kNoTrans, r, in, n, 1.0f, dlow, r, xm, in, 0.0f, l->da, in, c.compute);
  }
  if (dx != nullptr) {
    if (l->mask == nullptr) {
      engine::Gemm(engine::kNoTrans, engine::kNoTrans, n, in, r, 1.0f, dlow, r, l->a, in, 1.0f, dx, in, c.compute);
    } else {
      const size_t count = static_cast<size_t>(n) * in;
      if (c.loraTmp.size() < count) c.loraTmp.resize(count);
      engine::Gemm(engine::kNoTrans, engine::kNoTrans, n, in, r, 1.0f, dlow, r, l->a, in, 0.0f, c.loraTmp.data(), in,
                   c.compute);
      for (size_t i = 0; i < count; i++) dx[i] += c.loraTmp[i] * l->mask[i];
    }
  }
  profiler::Enter(prev);
}

}  // namespace decoder
}  // namespace prefkit
