// A projection of a layer with its optional LoRA adapter (projection.cc).
#pragma once

#include "context.h"

namespace prefkit {
namespace decoder {

// y = x W^T + b (b may be null), plus the adapter of (layer, proj) when there is one; keeps the
// adapter's (mask * x) A^T in s for the backward pass. x [n, in], W [out, in], y [n, out].
void Project(Context& c, LayerSaved& s, int layer, int proj, const float* x, const float* w, const float* b, int n,
             int in, int out, float* y);

// Backward of Project for upstream dy [n, out]: dx = dxBeta * dx + dy W (+ the adapter's part), and
// dW, db and the adapter's dA, dB where their pointers are not null.
void ProjectBackward(Context& c, LayerSaved& s, int layer, int proj, const float* x, const float* w, const float* dy,
                     int n, int in, int out, float* dx, float dxBeta, float* dw, float* db);

}  // namespace decoder
}  // namespace prefkit
