// One pre-norm decoder layer, forward and backward: RMSNorm -> attention -> residual -> RMSNorm ->
// SwiGLU MLP -> residual (layer.cc), with the attention block (attention.cc) and the MLP (mlp.cc).
// `w` and `g` are the layer's slots (LayerSlots of the weights / gradients arrays).
#pragma once

#include "context.h"

namespace prefkit {
namespace decoder {

// xin [n, hidden] -> xout [n, hidden]; keeps what the backward pass needs in s.
void LayerForward(Context& c, int layer, const float* const* w, LayerSaved& s, const float* xin, float* xout);
// c.dh holds d(xout) on entry and d(xin) on return; writes the layer's weight gradients into g.
void LayerBackward(Context& c, int layer, const float* const* w, float* const* g, LayerSaved& s);

// Self-attention of s.xn1 (q/k/v projections, Qwen3's q/k norms, rope, masked softmax over keys, the
// output projection) into out [n, hidden].
void AttentionForward(Context& c, int layer, const float* const* w, LayerSaved& s, float* out);
// dy = d(out) [n, hidden] -> dx = d(s.xn1) [n, hidden] (overwritten).
void AttentionBackward(Context& c, int layer, const float* const* w, float* const* g, LayerSaved& s,
                       const float* dy, float* dx);

// down(silu(gate(s.xn2)) * up(s.xn2)) into out [n, hidden].
void MlpForward(Context& c, int layer, const float* const* w, LayerSaved& s, float* out);
// dy = d(out) [n, hidden] -> dx = d(s.xn2) [n, hidden] (overwritten).
void MlpBackward(Context& c, int layer, const float* const* w, float* const* g, LayerSaved& s, const float* dy,
                 float* dx);

}  // namespace decoder
}  // namespace prefkit
