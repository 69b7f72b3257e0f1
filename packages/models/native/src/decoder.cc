// The fused decoder's forward and backward passes (decoder.h): the embedding, the layers (layer.cc),
// the final norm and the LM head (head.cc).
#include "decoder.h"

#include <algorithm>
#include <cstring>

#include "elementwise.h"
#include "layer.h"
#include "profiler.h"

namespace prefkit {
namespace decoder {

using namespace layout;

void Forward(Context& c, const Weights& w, bool save, bool withStats, float* out) {
  const Dims& d = c.d;
  const int n = c.batch * c.seqLen, H = d.hidden;
  profiler::Enter(profiler::kFwdElem);
  // With checkpointing each layer's input goes straight into the buffer kept for the backward pass.
  const bool keepInputs = save && c.checkpoint && d.layers > 0;
  float* x = keepInputs ? c.inputs[0].data() : c.h0.data();
  for (int r = 0; r < n; r++) GatherRow(w[kEmbed], c.embedBf16, c.ids[r], H, x + static_cast<size_t>(r) * H);
  for (int l = 0; l < d.layers; l++) {
    float* next;
    if (keepInputs) next = l + 1 < d.layers ? c.inputs[l + 1].data() : c.h1.data();
    else next = (x == c.h0.data()) ? c.h1.data() : c.h0.data();
    LayerForward(c, l, LayerSlots(w, l), c.layers[save && !c.checkpoint ? l : 0], x, next);
    x = next;
  }
  profiler::Enter(profiler::kFwdElem);
  std::memcpy(c.xfinal.data(), x, sizeof(float) * n * H);
  RmsNorm(c.xfinal.data(), w[kFinalNorm], n, H, d.eps, c.xnfinal.data(), c.rfinal.data());
  if (c.hiddenMode) std::memcpy(out, c.xnfinal.data(), sizeof(float) * n * H);
  else HeadForward(c, w[kLmHead], withStats, out);
  c.saved = save;
}

void Backward(Context& c, const Weights& w, const float* dy, const Grads& g) {
  const Dims& d = c.d;
  const int n = c.batch * c.seqLen, H = d.hidden, V = d.vocab;
  ResizeBackward(c);
  float* dEmbed = g[kEmbed];
  const PackedWeight* headPack = PackAt(c, kLmHead);
  const bool tied = (headPack != nullptr ? headPack->source : w[kLmHead]) == w[kEmbed];
  // In hidden mode dy is d(xnfinal) itself.
  if (c.hiddenMode) std::memcpy(c.dz.data(), dy, sizeof(float) * n * H);
  else HeadBackward(c, w[kLmHead], dy, tied ? dEmbed : g[kLmHead]);
  profiler::Enter(profiler::kBwdElem);
  float* dNorm = g[kFinalNorm];
  if (dNorm != nullptr) std::fill(dNorm, dNorm + H, 0.0f);
  RmsNormBackward(c.xfinal.data(), w[kFinalNorm], c.rfinal.data(), c.dz.data(), n, H, c.dh.data(), false, dNorm);
  for (int l = d.layers - 1; l >= 0; l--) {
    LayerSaved& s = c.layers[c.checkpoint ? 0 : l];
    // Checkpointing: the layer again from its kept input (same products, same masks: the same values).
    if (c.checkpoint) LayerForward(c, l, LayerSlots(w, l), s, c.inputs[l].data(), c.h0.data());
    LayerBackward(c, l, LayerSlots(w, l), LayerSlots(g, l), s);
  }
  profiler::Enter(profiler::kBwdEmbed);
  if (dEmbed != nullptr) {
    // A tied head's gradient is already in dEmbed (HeadBackward wrote it): add the embedding's to it.
    if (!tied || c.hiddenMode) std::fill(dEmbed, dEmbed + static_cast<size_t>(V) * H, 0.0f);
    for (int r = 0; r < n; r++) {
      float* dst = dEmbed + static_cast<size_t>(c.ids[r]) * H;
      const float* src = c.dh.data() + static_cast<size_t>(r) * H;
      for (int j = 0; j < H; j++) dst[j] += src[j];
    }
  }
  c.saved = false;
}

}  // namespace decoder
}  // namespace prefkit
