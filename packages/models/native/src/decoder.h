// The fused Llama-family decoder: the whole forward and backward pass of token log-probabilities
// (embedding -> N x layer -> final RMSNorm -> LM head -> selective log-softmax), or of the final-normed
// hidden states, on Float32Arrays in the layout of layout.h. It computes what the TypeScript decoder
// (packages/models/src/modeling/decoder) computes, so the two agree to float rounding.
#pragma once

#include "context.h"

namespace prefkit {
namespace decoder {

// The forward pass of c's current inputs (Resize and RopeTables done). out receives per row
// [log p(label)] or, withStats, [log p, mean logit, entropy, argmax == label]; in hidden mode (no
// labels) the final-normed hidden states [n, hidden]. With `save`, keeps what Backward needs.
void Forward(Context& c, const Weights& w, bool save, bool withStats, float* out);

// The backward pass of the saved forward for upstream dy ([n], or [n, hidden] in hidden mode): writes
// the gradient of sum(dy * out) into every non-null entry of g (and the adapters' in c.lora).
void Backward(Context& c, const Weights& w, const float* dy, const Grads& g);

// The LM head and log-softmax of c.xnfinal (head.cc): out as in Forward.
void HeadForward(Context& c, const float* head, bool withStats, float* out);
// Its backward pass: c.dz = d(xnfinal); the head's gradient into dW (beta 0) when not null.
void HeadBackward(Context& c, const float* head, const float* dy, float* dW);

}  // namespace decoder
}  // namespace prefkit
