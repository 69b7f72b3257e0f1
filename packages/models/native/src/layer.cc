// One pre-norm decoder layer (layer.h): the norms and residuals around attention.cc and mlp.cc.
#include "layer.h"

#include <algorithm>
#include <cstring>

#include "elementwise.h"
#include "profiler.h"

namespace prefkit {
namespace decoder {

using namespace layout;

void LayerForward(Context& c, int layer, const float* const* w, LayerSaved& s, const float* xin, float* xout) {
  const Dims& d = c.d;
  const int n = c.batch * c.seqLen, H = d.hidden;
  const size_t count = static_cast<size_t>(n) * H;
  profiler::Enter(profiler::kFwdElem);
  if (s.xin.data() != xin) std::memcpy(s.xin.data(), xin, sizeof(float) * count);
  RmsNorm(xin, w[kInputNorm], n, H, d.eps, s.xn1.data(), s.r1.data());
  // xmid = xin + attention(norm(xin))
  AttentionForward(c, layer, w, s, s.xmid.data());
  for (size_t i = 0; i < count; i++) s.xmid[i] += xin[i];
  // xout = xmid + mlp(norm(xmid))
  RmsNorm(s.xmid.data(), w[kPostNorm], n, H, d.eps, s.xn2.data(), s.r2.data());
  MlpForward(c, layer, w, s, xout);
  for (size_t i = 0; i < count; i++) xout[i] += s.xmid[i];
}

void LayerBackward(Context& c, int layer, const float* const* w, float* const* g, LayerSaved& s) {
  const Dims& d = c.d;
  const int n = c.batch * c.seqLen, H = d.hidden;
  profiler::Enter(profiler::kBwdElem);
  MlpBackward(c, layer, w, g, s, c.dh.data(), c.dz.data());
  // dmid = dh + norm2 backward.
  std::memcpy(c.dmid.data(), c.dh.data(), sizeof(float) * n * H);
  if (g[kPostNorm] != nullptr) std::fill(g[kPostNorm], g[kPostNorm] + H, 0.0f);
  RmsNormBackward(s.xmid.data(), w[kPostNorm], s.r2.data(), c.dz.data(), n, H, c.dmid.data(), true, g[kPostNorm]);
  AttentionBackward(c, layer, w, g, s, c.dmid.data(), c.dz.data());
  // dh = dmid + norm1 backward.
  std::memcpy(c.dh.data(), c.dmid.data(), sizeof(float) * n * H);
  if (g[kInputNorm] != nullptr) std::fill(g[kInputNorm], g[kInputNorm] + H, 0.0f);
  RmsNormBackward(s.xin.data(), w[kInputNorm], s.r1.data(), c.dz.data(), n, H, c.dh.data(), true, g[kInputNorm]);
}

}  // namespace decoder
}  // namespace prefkit
