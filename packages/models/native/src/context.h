// The state of one fused-decoder context: the model's dims and rope frequencies, the current call's
// inputs and adapters, the activations a forward pass keeps for its backward pass, and scratch, all in
// buffers that grow to the largest batch seen and are then reused (no allocation per step).
#pragma once

#include <cstddef>
#include <vector>

#include "layout.h"

namespace prefkit {
namespace decoder {

struct KvCache;  // kv_cache.h

// Weights / gradients by slot (layout.h); null where absent or where no gradient is wanted.
using Weights = std::vector<const float*>;
using Grads = std::vector<float*>;

// Activations one layer keeps for the backward pass (rows = batch * seqLen).
struct LayerSaved {
  std::vector<float> low[layout::kProjections];  // LoRA: (dropout(x) A^T) per projection
  std::vector<float> xin, r1, xn1, qraw, kraw, rq, rk, q, k, v, probs, ctx, xmid, r2, xn2, gate, up;
};

// One adapted projection: y += scale * (mask * x) A^T B^T.
struct LoraSlot {
  const float* a = nullptr;
  const float* b = nullptr;
  const float* mask = nullptr;
  float* da = nullptr;
  float* db = nullptr;
  float scale = 0.0f;
  int rank = 0;
};

struct Context {
  std::vector<LoraSlot> lora;  // layers * kProjections, empty when no projection is adapted
  std::vector<float> loraTmp, loraDlow, dkraw;
  Dims d{};
  std::vector<float> invFreq;
  int batch = 0, seqLen = 0;
  bool saved = false;  // a forward with save=true is waiting for its backward
  std::vector<LayerSaved> layers;
  std::vector<float> xfinal, rfinal, xnfinal, cosT, sinT, headBuf, lse, dy;
  std::vector<int> ids, mask, labels;
  bool headStored = false;
  bool hiddenMode = false;  // the last forward returned hidden states (labels were null)
  KvCache* kvSink = nullptr;  // a decode prefill's cache: the forward stores every layer's keys and values
  // Scratch.
  std::vector<float> h0, h1, act, dh, dmid, dz, dA, dG, dU, dq, dk, dv, dctx, dP;
};

// The slots of layer `layer` in a weights or gradients array.
template <typename T>
T* const* LayerSlots(const std::vector<T*>& all, int layer) {
  return all.data() + layout::kGlobalSlots + static_cast<size_t>(layer) * layout::kLayerSlots;
}

// Sizes the buffers for a batch (every layer's activations when `save`, else one layer's).
void Resize(Context& c, int batch, int seqLen, bool save);
// Sizes the backward pass's scratch for the saved forward's batch.
void ResizeBackward(Context& c);
// The rope tables of the call's positions [batch * seqLen].
void RopeTables(Context& c, const std::vector<int>& positions);

// Whether query i of sequence b may attend to key j in this layer (causal, sliding window, padding).
inline bool Allowed(const Context& c, int layer, int b, int i, int j) {
  if (j > i) return false;
  const Dims& d = c.d;
  if (d.window > 0 && layer >= d.windowStart && i - j >= d.window) return false;
  return c.mask.empty() || c.mask[static_cast<size_t>(b) * c.seqLen + j] != 0;
}

}  // namespace decoder
}  // namespace prefkit
