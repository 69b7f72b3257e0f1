// The SwiGLU MLP of a layer, forward and backward: down(silu(gate(x)) * up(x)), each projection with
// its optional LoRA adapter; the elementwise loops are split over the pool.
#include "elementwise.h"
#include "engine.h"
#include "layer.h"
#include "projection.h"

namespace prefkit {
namespace decoder {
namespace {

// a = silu(gate) * up into c.act (the backward pass recomputes it rather than keeping one per layer).
void Activation(Context& c, const LayerSaved& s, size_t count) {
  float* a = c.act.data();
  const float* gate = s.gate.data();
  const float* up = s.up.data();
  engine::ParallelFor(count, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) a[i] = gate[i] * Sigmoid(gate[i]) * up[i];
  });
}

}  // namespace

using namespace layout;

void MlpForward(Context& c, int layer, const float* const* w, LayerSaved& s, float* out) {
  const Dims& d = c.d;
  const int n = c.batch * c.seqLen, H = d.hidden;
  Project(c, s, layer, kPg, s.xn2.data(), w[kWg], nullptr, n, H, d.inter, s.gate.data());
  Project(c, s, layer, kPu, s.xn2.data(), w[kWu], nullptr, n, H, d.inter, s.up.data());
  Activation(c, s, static_cast<size_t>(n) * d.inter);
  Project(c, s, layer, kPd, c.act.data(), w[kWd], nullptr, n, d.inter, H, out);
}

void MlpBackward(Context& c, int layer, const float* const* w, float* const* g, LayerSaved& s, const float* dy,
                 float* dx) {
  const Dims& d = c.d;
  const int n = c.batch * c.seqLen, H = d.hidden, I = d.inter;
  const size_t ni = static_cast<size_t>(n) * I;
  Activation(c, s, ni);
  ProjectBackward(c, s, layer, kPd, c.act.data(), w[kWd], dy, n, I, H, c.dA.data(), 0.0f, g[kWd], nullptr);
  const float* gate = s.gate.data();
  const float* up = s.up.data();
  const float* dA = c.dA.data();
  float* dU = c.dU.data();
  float* dG = c.dG.data();
  engine::ParallelFor(ni, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      const float gt = gate[i], sg = Sigmoid(gt), silu = gt * sg, da = dA[i];
      dU[i] = da * silu;
      dG[i] = da * up[i] * sg * (1.0f + gt * (1.0f - sg));
    }
  });
  ProjectBackward(c, s, layer, kPg, s.xn2.data(), w[kWg], c.dG.data(), n, H, I, dx, 0.0f, g[kWg], nullptr);
  ProjectBackward(c, s, layer, kPu, s.xn2.data(), w[kWu], c.dU.data(), n, H, I, dx, 1.0f, g[kWu], nullptr);
}

}  // namespace decoder
}  // namespace prefkit
