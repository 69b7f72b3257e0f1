// The attention block of a layer, forward and backward: q/k/v projections (with Qwen2's biases and any
// LoRA adapters), Qwen3's per-head q/k RMSNorm, rope, softmax(q k^T / sqrt(D)) under the causal,
// padding and sliding-window mask with grouped-query heads, and the output projection. The
// attention products run one (sequence, head) per thread, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "elementwise.h"
#include "engine.h"
#include "kv_cache.h"
#include "layer.h"
#include "profiler.h"
#include "projection.h"

namespace prefkit {
namespace decoder {

using namespace layout;

void AttentionForward(Context& c, int layer, const float* const* w, LayerSaved& s, float* out) {
  const Dims& d = c.d;
  const int B = c.batch, T = c.seqLen, n = B * T, H = d.hidden, QD = d.qd(), KVD = d.kvd(), D = d.headDim;
  const int groups = d.heads / d.kvHeads;
  float* qdst = d.qkNorm ? s.qraw.data() : s.q.data();
  float* kdst = d.qkNorm ? s.kraw.data() : s.k.data();
  Project(c, s, layer, kPq, s.xn1.data(), w[kWq], w[kBq], n, H, QD, qdst);
  Project(c, s, layer, kPk, s.xn1.data(), w[kWk], w[kBk], n, H, KVD, kdst);
  Project(c, s, layer, kPv, s.xn1.data(), w[kWv], w[kBv], n, H, KVD, s.v.data());
  if (d.qkNorm) {
    RmsNorm(s.qraw.data(), w[kQn], n * d.heads, D, d.eps, s.q.data(), s.rq.data());
    RmsNorm(s.kraw.data(), w[kKn], n * d.kvHeads, D, d.eps, s.k.data(), s.rk.data());
  }
  Rope(s.q.data(), n, d.heads, D, c.cosT.data(), c.sinT.data(), false);
  Rope(s.k.data(), n, d.kvHeads, D, c.cosT.data(), c.sinT.data(), false);
  if (c.kvSink != nullptr) StorePrefill(*c.kvSink, layer, T, s.k.data(), s.v.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  profiler::Enter(profiler::kFwdAttn);
  // One task per (sequence, head), each on one thread: the same products whatever the thread count.
  engine::ParallelGemms(B * d.heads, [&](int task, int) {
    const int b = task / d.heads, h = task % d.heads;
    const int kv = h / groups;
    const float* q = s.q.data() + static_cast<size_t>(b) * T * QD + static_cast<size_t>(h) * D;
    const float* k = s.k.data() + static_cast<size_t>(b) * T * KVD + static_cast<size_t>(kv) * D;
    const float* v = s.v.data() + static_cast<size_t>(b) * T * KVD + static_cast<size_t>(kv) * D;
    float* p = s.probs.data() + (static_cast<size_t>(b) * d.heads + h) * T * T;
    engine::Sgemm(engine::kNoTrans, engine::kTrans, T, T, D, scale, q, QD, k, KVD, 0.0f, p, T);
    for (int i = 0; i < T; i++) {
      float* row = p + static_cast<size_t>(i) * T;
      float mx = -INFINITY;
      for (int j = 0; j < T; j++)
        if (Allowed(c, layer, b, i, j)) mx = std::max(mx, row[j]);
      if (mx == -INFINITY) {  // a fully masked (left-padding) query: uniform, as the additive-bias path
        for (int j = 0; j < T; j++) row[j] = 1.0f / static_cast<float>(T);
        continue;
      }
      float sum = 0.0f;
      for (int j = 0; j < T; j++) {
        const float e = Allowed(c, layer, b, i, j) ? std::exp(row[j] - mx) : 0.0f;
        row[j] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
      for (int j = 0; j < T; j++) row[j] *= inv;
    }
    float* ctx = s.ctx.data() + static_cast<size_t>(b) * T * QD + static_cast<size_t>(h) * D;
    engine::Sgemm(engine::kNoTrans, engine::kNoTrans, T, D, T, 1.0f, p, T, v, KVD, 0.0f, ctx, QD);
  });
  profiler::Enter(profiler::kFwdElem);
  Project(c, s, layer, kPo, s.ctx.data(), w[kWo], nullptr, n, QD, H, out);
}

void AttentionBackward(Context& c, int layer, const float* const* w, float* const* g, LayerSaved& s,
                       const float* dy, float* dx) {
  const Dims& d = c.d;
  const int B = c.batch, T = c.seqLen, n = B * T, H = d.hidden, QD = d.qd(), KVD = d.kvd(), D = d.headDim;
  const int groups = d.heads / d.kvHeads;
  ProjectBackward(c, s, layer, kPo, s.ctx.data(), w[kWo], dy, n, QD, H, c.dctx.data(), 0.0f, g[kWo], nullptr);
  std::fill(c.dk.begin(), c.dk.begin() + static_cast<size_t>(n) * KVD, 0.0f);
  std::fill(c.dv.begin(), c.dv.begin() + static_cast<size_t>(n) * KVD, 0.0f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  profiler::Enter(profiler::kBwdAttn);
  // One task per (sequence, KV head): the query heads of a group add into the same dK and dV, in order,
  // on one thread, each task with its own dP; the same products whatever the thread count.
  engine::ParallelGemms(B * d.kvHeads, [&](int task, int worker) {
    const int b = task / d.kvHeads, kv = task % d.kvHeads;
    float* dP = c.dP.data() + static_cast<size_t>(worker) * T * T;
    for (int h = kv * groups; h < (kv + 1) * groups; h++) {
      const size_t qoff = static_cast<size_t>(b) * T * QD + static_cast<size_t>(h) * D;
      const size_t kvoff = static_cast<size_t>(b) * T * KVD + static_cast<size_t>(kv) * D;
      const float* p = s.probs.data() + (static_cast<size_t>(b) * d.heads + h) * T * T;
      const float* dctx = c.dctx.data() + qoff;
      // dP = dctx V^T ; dV += P^T dctx
      engine::Sgemm(engine::kNoTrans, engine::kTrans, T, T, D, 1.0f, dctx, QD, s.v.data() + kvoff, KVD, 0.0f, dP,
                    T);
      engine::Sgemm(engine::kTrans, engine::kNoTrans, T, D, T, 1.0f, p, T, dctx, QD, 1.0f, c.dv.data() + kvoff,
                    KVD);
      // dS = P * (dP - rowsum(dP * P))
      for (int i = 0; i < T; i++) {
        const float* pr = p + static_cast<size_t>(i) * T;
        float* dr = dP + static_cast<size_t>(i) * T;
        float dot = 0.0f;
        for (int j = 0; j < T; j++) dot += pr[j] * dr[j];
        for (int j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - dot);
      }
      // dQ = scale dS K ; dK += scale dS^T Q
      engine::Sgemm(engine::kNoTrans, engine::kNoTrans, T, D, T, scale, dP, T, s.k.data() + kvoff, KVD, 0.0f,
                    c.dq.data() + qoff, QD);
      engine::Sgemm(engine::kTrans, engine::kNoTrans, T, D, T, scale, dP, T, s.q.data() + qoff, QD, 1.0f,
                    c.dk.data() + kvoff, KVD);
    }
  });
  profiler::Enter(profiler::kBwdElem);
  Rope(c.dq.data(), n, d.heads, D, c.cosT.data(), c.sinT.data(), true);
  Rope(c.dk.data(), n, d.kvHeads, D, c.cosT.data(), c.sinT.data(), true);
  if (d.qkNorm) {
    // Through the per-head norms, into dctx-sized (free by now) and context scratch.
    float* dqraw = c.dctx.data();
    if (g[kQn] != nullptr) std::fill(g[kQn], g[kQn] + D, 0.0f);
    if (g[kKn] != nullptr) std::fill(g[kKn], g[kKn] + D, 0.0f);
    RmsNormBackward(s.qraw.data(), w[kQn], s.rq.data(), c.dq.data(), n * d.heads, D, dqraw, false, g[kQn]);
    std::memcpy(c.dq.data(), dqraw, sizeof(float) * n * QD);
    std::vector<float>& dkraw = c.dkraw;
    dkraw.resize(static_cast<size_t>(n) * KVD);
    RmsNormBackward(s.kraw.data(), w[kKn], s.rk.data(), c.dk.data(), n * d.kvHeads, D, dkraw.data(), false, g[kKn]);
    std::memcpy(c.dk.data(), dkraw.data(), sizeof(float) * n * KVD);
  }
  ProjectBackward(c, s, layer, kPq, s.xn1.data(), w[kWq], c.dq.data(), n, H, QD, dx, 0.0f, g[kWq], g[kBq]);
  ProjectBackward(c, s, layer, kPk, s.xn1.data(), w[kWk], c.dk.data(), n, H, KVD, dx, 1.0f, g[kWk], g[kBk]);
  ProjectBackward(c, s, layer, kPv, s.xn1.data(), w[kWv], c.dv.data(), n, H, KVD, dx, 1.0f, g[kWv], g[kBv]);
}

}  // namespace decoder
}  // namespace prefkit
