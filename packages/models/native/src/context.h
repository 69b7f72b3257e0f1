// The state of one fused-decoder context: the model's dims and rope frequencies, the current call's
// inputs and adapters, the activations a forward pass keeps for its backward pass, and scratch, all in
// buffers that grow to the largest batch seen and are then reused (no allocation per step).
#pragma once

#include <cstddef>
#include <vector>

#include "layout.h"
#include "packed_weight.h"

namespace prefkit {
namespace decoder {

struct KvCache;  // kv_cache.h

// Weights / gradients by slot (layout.h); null where absent or where no gradient is wanted. A projection or
// LM-head slot may instead hold a pack (Context::packs; its float pointer is then null).
using Weights = std::vector<const float*>;
using Grads = std::vector<float*>;
using Packs = std::vector<const PackedWeight*>;

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
  Packs packs;                 // by slot, this call's packed weights (empty: none)
  // The embedding slot holds bf16 bits (a Uint16Array; its rows are widened as they are gathered) instead
  // of float32 values: a 16-bit frozen table needs no float32 copy.
  bool embedBf16 = false;
  // Products of the projections, the LoRA updates and the LM head: PREFKIT_F32, or PREFKIT_BF16 (operands
  // rounded to bf16, products summed in fp32: PyTorch's CPU autocast). Attention stays fp32.
  int32_t compute = PREFKIT_F32;
  // Gradient checkpointing: a forward with save keeps only each layer's input (inputs[l]) and one layer's
  // activations as scratch (layers[0]); the backward pass recomputes each layer before its gradients.
  bool checkpoint = false;
  std::vector<std::vector<float>> inputs;
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

// The pack in global slot `slot`, or in `slot` of layer `layer`; null when that weight is not packed.
inline const PackedWeight* PackAt(const Context& c, size_t slot) { return c.packs.empty() ? nullptr : c.packs[slot]; }
inline const PackedWeight* LayerPack(const Context& c, int layer, int slot) {
  return PackAt(c, layout::kGlobalSlots + static_cast<size_t>(layer) * layout::kLayerSlots + slot);
}

// Sizes the buffers for a batch (every layer's activations when `save`, else one layer's; with
// c.checkpoint every layer's input and one layer's activations).
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
