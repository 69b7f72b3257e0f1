// The fused decoder of the prefkit native addon: the whole Llama-family forward and backward pass
// (embedding, N x [RMSNorm, GQA attention with rope, residual, RMSNorm, SwiGLU, residual], final
// RMSNorm, LM head with selective log-softmax) on Float32Arrays, every product through prefkit's GEMM
// (gemm/gemm.h) and the rest in tight loops over buffers that are allocated once and reused.
//
// It computes what `fusedSequenceLogProbs` computes through tfjs ops (the same formulas as the
// TypeScript decoder in packages/models/src/modeling/decoder), so the two paths agree to float
// rounding. Exports (see RegisterDecoder):
//
//   decoderCreate(dims: Float64Array, invFreq: Float32Array) -> context
//     dims = [layers, hidden, heads, kvHeads, headDim, intermediate, vocab, eps, qkvBias, qkNorm,
//             slidingWindow (-1 for none), slidingWindowStartLayer]
//   decoderForward(ctx, weights, ids, mask|null, positions, labels|null, batch, seqLen, save, withStats)
//     -> Float32Array [N] (log p(label)) or [N, 4] (log p, mean logit, entropy, argmax == label); with
//        labels null, the final-normed hidden states [N, hidden] instead (no LM head; the backward pass
//        then takes d(hidden) [N, hidden] as dy)
//   decoderBackward(ctx, weights, dy [N], grads, lora...) -> undefined; writes d(sum dy * logp)/dW into grads
//
// LoRA (PEFT's `y = x W^T + scale * (dropout(x) A^T) B^T`) on any of the 7 projections of a layer
// (q, k, v, o, gate, up, down) comes as three optional arguments after `withStats` (forward) or after
// `grads` (backward), null when no projection is adapted:
//   loraWeights: per layer and projection [A [r,in], B [out,r]] (null for a plain projection), 14 per layer
//   loraShape: Float64Array of [scale, rank] per layer and projection (7 pairs per layer)
//   loraMasks: per layer and projection the dropout multiplier [N, in] (0 or 1/(1-p)), or null
// and, in the backward pass only, loraGrads (same layout as loraWeights; null entries get no gradient).
//
// `weights` (and `grads`, same layout; null entries get no gradient) is an array:
//   [embed [V,H], finalNorm [H], head [V,H] (the embedding again when tied)] followed, per layer, by
//   [inputNorm, q, k, v, o, postNorm, gate, up, down, qBias, kBias, vBias, qNorm, kNorm]
// (absent biases / q-k norms are null). Projection weights are in HF layout [out, in].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "gemm/gemm.h"
#include "napi_util.h"

namespace prefkit {
namespace {

// Seconds spent per phase since the last decoderProfile(true) call (see decoderProfile).
enum Phase { kFwdGemm, kFwdAttn, kFwdElem, kFwdHeadGemm, kFwdHeadSoftmax, kBwdGemm, kBwdAttn, kBwdElem, kBwdHeadGemm,
             kBwdHeadSoftmax, kBwdEmbed, kPhases };
const char* const kPhaseNames[kPhases] = {"forward.projections", "forward.attention", "forward.elementwise",
                                          "forward.head_matmul", "forward.head_logsoftmax", "backward.projections",
                                          "backward.attention", "backward.elementwise", "backward.head_matmul",
                                          "backward.head_softmax_grad", "backward.embedding"};
double gPhaseSeconds[kPhases] = {};
int gPhase = kFwdElem;

// Charges the time until the next Switch() (or destruction) to the current phase.
struct PhaseClock {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  void Switch(int next) {
    const auto now = std::chrono::steady_clock::now();
    gPhaseSeconds[gPhase] += std::chrono::duration<double>(now - start).count();
    start = now;
    gPhase = next;
  }
  ~PhaseClock() { Switch(gPhase); }
};
PhaseClock* gClock = nullptr;
inline void Enter(int phase) {
  if (gClock != nullptr) gClock->Switch(phase);
}

// Splits elementwise loops over the GEMM's thread pool (the engine's `threads`).
struct HelperThread {
  // Runs fn(begin, end) over contiguous chunks of [0, n), at least `minimum` elements each.
  void ParallelFor(size_t n, const std::function<void(size_t, size_t)>& fn, size_t minimum = 4096) {
    gemm::ParallelFor(n, minimum, 1, [&](size_t begin, size_t end) { fn(begin, end); });
  }
};
HelperThread gHelper;

constexpr int kGlobal = 3;
constexpr int kPerLayer = 14;
enum LayerWeight { kLn1, kWq, kWk, kWv, kWo, kLn2, kWg, kWu, kWd, kBq, kBk, kBv, kQn, kKn };

struct Dims {
  int layers, hidden, heads, kvHeads, headDim, inter, vocab;
  float eps;
  bool qkvBias, qkNorm;
  int window, windowStart;
  int qd() const { return heads * headDim; }
  int kvd() const { return kvHeads * headDim; }
};

// Activations one layer keeps for the backward pass (rows = batch * seqLen).
struct LayerSaved {
  std::vector<float> low[7];  // LoRA: (dropout(x) A^T) per projection
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
enum Proj { kPq, kPk, kPv, kPo, kPg, kPu, kPd };

struct Context {
  std::vector<LoraSlot> lora;  // layers * 7, empty when no projection is adapted
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
  // Scratch.
  std::vector<float> h0, h1, act, dh, dmid, dz, dA, dG, dU, dq, dk, dv, dctx, dP;
};

using W = std::vector<const float*>;
using G = std::vector<float*>;

inline void Linear(const float* x, const float* w, const float* b, int n, int in, int out, float* y) {
  const int prev = gPhase;
  Enter(kFwdGemm);
  gemm::Sgemm(gemm::kNoTrans, gemm::kTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
  if (b != nullptr) {
    for (int r = 0; r < n; r++) {
      float* row = y + static_cast<size_t>(r) * out;
      for (int j = 0; j < out; j++) row[j] += b[j];
    }
  }
  Enter(prev);
}

// dx (+)= dy . W ; dW = dy^T . x ; db = sum rows dy.
inline void LinearBackward(const float* x, const float* w, const float* dy, int n, int in, int out, float* dx,
                           float dxBeta, float* dw, float* db) {
  const int prev = gPhase;
  Enter(kBwdGemm);
  if (dx != nullptr)
    gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, n, in, out, 1.0f, dy, out, w, in, dxBeta, dx, in);
  if (dw != nullptr)
    gemm::Sgemm(gemm::kTrans, gemm::kNoTrans, out, in, n, 1.0f, dy, out, x, in, 0.0f, dw, in);
  if (db != nullptr) {
    std::fill(db, db + out, 0.0f);
    for (int r = 0; r < n; r++) {
      const float* row = dy + static_cast<size_t>(r) * out;
      for (int j = 0; j < out; j++) db[j] += row[j];
    }
  }
  Enter(prev);
}

inline const LoraSlot* Adapter(const Context& c, int layer, int proj) {
  if (c.lora.empty()) return nullptr;
  const LoraSlot& l = c.lora[static_cast<size_t>(layer) * 7 + proj];
  return l.a != nullptr ? &l : nullptr;
}

// mask * x into c.loraTmp (or x itself without a mask).
inline const float* Masked(Context& c, const LoraSlot& l, const float* x, size_t count) {
  if (l.mask == nullptr) return x;
  if (c.loraTmp.size() < count) c.loraTmp.resize(count);
  for (size_t i = 0; i < count; i++) c.loraTmp[i] = x[i] * l.mask[i];
  return c.loraTmp.data();
}

// A projection with its optional LoRA update (forward); keeps (mask * x) A^T for the backward pass.
void Project(Context& c, LayerSaved& s, int layer, int proj, const float* x, const float* w, const float* b, int n,
             int in, int out, float* y) {
  Linear(x, w, b, n, in, out, y);
  const LoraSlot* l = Adapter(c, layer, proj);
  if (l == nullptr) return;
  const int prev = gPhase;
  Enter(kFwdGemm);
  const float* xm = Masked(c, *l, x, static_cast<size_t>(n) * in);
  std::vector<float>& low = s.low[proj];
  low.resize(static_cast<size_t>(n) * l->rank);
  gemm::Sgemm(gemm::kNoTrans, gemm::kTrans, n, l->rank, in, 1.0f, xm, in, l->a, in, 0.0f, low.data(),
              l->rank);
  gemm::Sgemm(gemm::kNoTrans, gemm::kTrans, n, out, l->rank, l->scale, low.data(), l->rank, l->b, l->rank,
              1.0f, y, out);
  Enter(prev);
}

// Backward of Project: the base projection's gradients, then the adapter's (dB, dA, and its part of dx).
void ProjectBackward(Context& c, LayerSaved& s, int layer, int proj, const float* x, const float* w, const float* dy,
                     int n, int in, int out, float* dx, float dxBeta, float* dw, float* db) {
  LinearBackward(x, w, dy, n, in, out, dx, dxBeta, dw, db);
  const LoraSlot* l = Adapter(c, layer, proj);
  if (l == nullptr) return;
  const int prev = gPhase;
  Enter(kBwdGemm);
  const int r = l->rank;
  const size_t nr = static_cast<size_t>(n) * r;
  if (c.loraDlow.size() < nr) c.loraDlow.resize(nr);
  float* dlow = c.loraDlow.data();
  if (l->db != nullptr)
    gemm::Sgemm(gemm::kTrans, gemm::kNoTrans, out, r, n, l->scale, dy, out, s.low[proj].data(), r, 0.0f,
                l->db, r);
  gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, n, r, out, l->scale, dy, out, l->b, r, 0.0f, dlow, r);
  if (l->da != nullptr) {
    const float* xm = Masked(c, *l, x, static_cast<size_t>(n) * in);
    gemm::Sgemm(gemm::kTrans, gemm::kNoTrans, r, in, n, 1.0f, dlow, r, xm, in, 0.0f, l->da, in);
  }
  if (dx != nullptr) {
    if (l->mask == nullptr) {
      gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, n, in, r, 1.0f, dlow, r, l->a, in, 1.0f, dx, in);
    } else {
      const size_t count = static_cast<size_t>(n) * in;
      if (c.loraTmp.size() < count) c.loraTmp.resize(count);
      gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, n, in, r, 1.0f, dlow, r, l->a, in, 0.0f,
                  c.loraTmp.data(), in);
      for (size_t i = 0; i < count; i++) dx[i] += c.loraTmp[i] * l->mask[i];
    }
  }
  Enter(prev);
}

// y = w * x / sqrt(mean(x^2) + eps) over rows of width `dim`; r receives the inverse rms.
inline void RmsNorm(const float* x, const float* w, int rows, int dim, float eps, float* y, float* r) {
  for (int i = 0; i < rows; i++) {
    const float* xi = x + static_cast<size_t>(i) * dim;
    float* yi = y + static_cast<size_t>(i) * dim;
    float ss = 0.0f;
    for (int j = 0; j < dim; j++) ss += xi[j] * xi[j];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    r[i] = inv;
    for (int j = 0; j < dim; j++) yi[j] = xi[j] * inv * w[j];
  }
}

// dx (+)= d/dx of RmsNorm for upstream dy; dw += sum rows dy * x * r (when dw != nullptr).
inline void RmsNormBackward(const float* x, const float* w, const float* r, const float* dy, int rows, int dim,
                            float* dx, bool accumulate, float* dw) {
  for (int i = 0; i < rows; i++) {
    const float* xi = x + static_cast<size_t>(i) * dim;
    const float* dyi = dy + static_cast<size_t>(i) * dim;
    float* dxi = dx + static_cast<size_t>(i) * dim;
    const float ri = r[i];
    float dot = 0.0f;
    for (int j = 0; j < dim; j++) dot += w[j] * dyi[j] * xi[j];
    const float c = ri * ri * ri * dot / static_cast<float>(dim);
    if (accumulate) {
      for (int j = 0; j < dim; j++) dxi[j] += ri * w[j] * dyi[j] - c * xi[j];
    } else {
      for (int j = 0; j < dim; j++) dxi[j] = ri * w[j] * dyi[j] - c * xi[j];
    }
    if (dw != nullptr)
      for (int j = 0; j < dim; j++) dw[j] += dyi[j] * xi[j] * ri;
  }
}

// Rotate rows [N, heads*D] in place: y = x cos + rotate_half(x) sin (forward) or its transpose.
inline void Rope(float* x, int n, int heads, int d, const float* cosT, const float* sinT, bool backward) {
  const int half = d / 2;
  for (int r = 0; r < n; r++) {
    const float* c = cosT + static_cast<size_t>(r) * half;
    const float* s = sinT + static_cast<size_t>(r) * half;
    for (int h = 0; h < heads; h++) {
      float* v = x + static_cast<size_t>(r) * heads * d + static_cast<size_t>(h) * d;
      for (int j = 0; j < half; j++) {
        const float a = v[j], b = v[j + half];
        if (!backward) {
          v[j] = a * c[j] - b * s[j];
          v[j + half] = b * c[j] + a * s[j];
        } else {
          v[j] = a * c[j] + b * s[j];
          v[j + half] = b * c[j] - a * s[j];
        }
      }
    }
  }
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void Resize(Context& c, int batch, int seqLen, bool save) {
  const Dims& d = c.d;
  const size_t n = static_cast<size_t>(batch) * seqLen;
  const size_t h = d.hidden, qd = d.qd(), kvd = d.kvd(), in = d.inter;
  const size_t probs = static_cast<size_t>(batch) * d.heads * seqLen * seqLen;
  const size_t want = save ? static_cast<size_t>(d.layers) : 1;
  if (c.layers.size() < want) c.layers.resize(want);
  for (size_t l = 0; l < want; l++) {
    LayerSaved& s = c.layers[l];
    s.xin.resize(n * h);
    s.r1.resize(n);
    s.xn1.resize(n * h);
    if (d.qkNorm) {
      s.qraw.resize(n * qd);
      s.kraw.resize(n * kvd);
      s.rq.resize(n * d.heads);
      s.rk.resize(n * d.kvHeads);
    }
    s.q.resize(n * qd);
    s.k.resize(n * kvd);
    s.v.resize(n * kvd);
    s.probs.resize(probs);
    s.ctx.resize(n * qd);
    s.xmid.resize(n * h);
    s.r2.resize(n);
    s.xn2.resize(n * h);
    s.gate.resize(n * in);
    s.up.resize(n * in);
  }
  c.xfinal.resize(n * h);
  c.rfinal.resize(n);
  c.xnfinal.resize(n * h);
  c.cosT.resize(n * d.headDim / 2);
  c.sinT.resize(n * d.headDim / 2);
  c.lse.resize(n);
  c.h0.resize(n * h);
  c.h1.resize(n * h);
  c.act.resize(n * in);
  // Keep every row's probabilities for the backward pass when they fit in 256 MB, else recompute chunks.
  const size_t all = n * static_cast<size_t>(d.vocab);
  c.headStored = save && !c.hiddenMode && all <= (size_t{1} << 26);
  const size_t chunkRows = std::min<size_t>(n, 128);
  if (!c.hiddenMode) c.headBuf.resize(c.headStored ? all : chunkRows * d.vocab);
  c.batch = batch;
  c.seqLen = seqLen;
}

void ResizeBackward(Context& c) {
  const Dims& d = c.d;
  const size_t n = static_cast<size_t>(c.batch) * c.seqLen;
  c.dh.resize(n * d.hidden);
  c.dmid.resize(n * d.hidden);
  c.dz.resize(n * d.hidden);
  c.dA.resize(n * d.inter);
  c.dG.resize(n * d.inter);
  c.dU.resize(n * d.inter);
  c.dq.resize(n * d.qd());
  c.dk.resize(n * d.kvd());
  c.dv.resize(n * d.kvd());
  c.dctx.resize(n * d.qd());
  c.dP.resize(static_cast<size_t>(gemm::Threads()) * c.seqLen * c.seqLen);  // one [T, T] per worker
}

inline bool Allowed(const Context& c, int layer, int b, int i, int j) {
  if (j > i) return false;
  const Dims& d = c.d;
  if (d.window > 0 && layer >= d.windowStart && i - j >= d.window) return false;
  return c.mask.empty() || c.mask[static_cast<size_t>(b) * c.seqLen + j] != 0;
}

// One layer forward from xin into xout, saving into s.
void LayerForward(Context& c, int layer, const W& w, LayerSaved& s, const float* xin, float* xout) {
  const Dims& d = c.d;
  const int B = c.batch, T = c.seqLen, n = B * T, H = d.hidden, QD = d.qd(), KVD = d.kvd(), D = d.headDim;
  const int groups = d.heads / d.kvHeads;
  const float* const* lw = w.data() + kGlobal + static_cast<size_t>(layer) * kPerLayer;
  Enter(kFwdElem);
  if (s.xin.data() != xin) std::memcpy(s.xin.data(), xin, sizeof(float) * n * H);
  RmsNorm(xin, lw[kLn1], n, H, d.eps, s.xn1.data(), s.r1.data());
  float* qdst = d.qkNorm ? s.qraw.data() : s.q.data();
  float* kdst = d.qkNorm ? s.kraw.data() : s.k.data();
  Project(c, s, layer, kPq, s.xn1.data(), lw[kWq], lw[kBq], n, H, QD, qdst);
  Project(c, s, layer, kPk, s.xn1.data(), lw[kWk], lw[kBk], n, H, KVD, kdst);
  Project(c, s, layer, kPv, s.xn1.data(), lw[kWv], lw[kBv], n, H, KVD, s.v.data());
  if (d.qkNorm) {
    RmsNorm(s.qraw.data(), lw[kQn], n * d.heads, D, d.eps, s.q.data(), s.rq.data());
    RmsNorm(s.kraw.data(), lw[kKn], n * d.kvHeads, D, d.eps, s.k.data(), s.rk.data());
  }
  Rope(s.q.data(), n, d.heads, D, c.cosT.data(), c.sinT.data(), false);
  Rope(s.k.data(), n, d.kvHeads, D, c.cosT.data(), c.sinT.data(), false);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  Enter(kFwdAttn);
  // One task per (sequence, head), each on one thread: the same products whatever the thread count.
  gemm::ParallelGemms(B * d.heads, [&](int task, int) {
    const int b = task / d.heads, h = task % d.heads;
    const int kv = h / groups;
    const float* q = s.q.data() + static_cast<size_t>(b) * T * QD + static_cast<size_t>(h) * D;
    const float* k = s.k.data() + static_cast<size_t>(b) * T * KVD + static_cast<size_t>(kv) * D;
    const float* v = s.v.data() + static_cast<size_t>(b) * T * KVD + static_cast<size_t>(kv) * D;
    float* p = s.probs.data() + (static_cast<size_t>(b) * d.heads + h) * T * T;
    gemm::Sgemm(gemm::kNoTrans, gemm::kTrans, T, T, D, scale, q, QD, k, KVD, 0.0f, p, T);
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
    float* out = s.ctx.data() + static_cast<size_t>(b) * T * QD + static_cast<size_t>(h) * D;
    gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, T, D, T, 1.0f, p, T, v, KVD, 0.0f, out, QD);
  });
  Enter(kFwdElem);
  // xmid = xin + ctx Wo^T
  Project(c, s, layer, kPo, s.ctx.data(), lw[kWo], nullptr, n, QD, H, s.xmid.data());
  for (size_t i = 0; i < static_cast<size_t>(n) * H; i++) s.xmid[i] += xin[i];
  RmsNorm(s.xmid.data(), lw[kLn2], n, H, d.eps, s.xn2.data(), s.r2.data());
  Project(c, s, layer, kPg, s.xn2.data(), lw[kWg], nullptr, n, H, d.inter, s.gate.data());
  Project(c, s, layer, kPu, s.xn2.data(), lw[kWu], nullptr, n, H, d.inter, s.up.data());
  const size_t ni = static_cast<size_t>(n) * d.inter;
  float* a = c.act.data();
  const float* gate = s.gate.data();
  const float* up = s.up.data();
  gHelper.ParallelFor(ni, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) a[i] = gate[i] * Sigmoid(gate[i]) * up[i];
  });
  Project(c, s, layer, kPd, a, lw[kWd], nullptr, n, d.inter, H, xout);
  for (size_t i = 0; i < static_cast<size_t>(n) * H; i++) xout[i] += s.xmid[i];
}

// Backward of one layer: c.dh holds d(out); on return c.dh holds d(in).
void LayerBackward(Context& c, int layer, const W& w, const G& g, LayerSaved& s) {
  const Dims& d = c.d;
  const int B = c.batch, T = c.seqLen, n = B * T, H = d.hidden, QD = d.qd(), KVD = d.kvd(), D = d.headDim;
  const int I = d.inter, groups = d.heads / d.kvHeads;
  const float* const* lw = w.data() + kGlobal + static_cast<size_t>(layer) * kPerLayer;
  float* const* lg = g.data() + kGlobal + static_cast<size_t>(layer) * kPerLayer;
  const size_t ni = static_cast<size_t>(n) * I;
  Enter(kBwdElem);
  // MLP. a = silu(gate) * up.
  float* a = c.act.data();
  const float* gate = s.gate.data();
  const float* up = s.up.data();
  gHelper.ParallelFor(ni, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) a[i] = gate[i] * Sigmoid(gate[i]) * up[i];
  });
  ProjectBackward(c, s, layer, kPd, a, lw[kWd], c.dh.data(), n, I, H, c.dA.data(), 0.0f, lg[kWd], nullptr);
  float* dA = c.dA.data();
  float* dU = c.dU.data();
  float* dG = c.dG.data();
  gHelper.ParallelFor(ni, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      const float gt = gate[i], sg = Sigmoid(gt), silu = gt * sg, da = dA[i];
      dU[i] = da * silu;
      dG[i] = da * up[i] * sg * (1.0f + gt * (1.0f - sg));
    }
  });
  ProjectBackward(c, s, layer, kPg, s.xn2.data(), lw[kWg], c.dG.data(), n, H, I, c.dz.data(), 0.0f, lg[kWg], nullptr);
  ProjectBackward(c, s, layer, kPu, s.xn2.data(), lw[kWu], c.dU.data(), n, H, I, c.dz.data(), 1.0f, lg[kWu], nullptr);
  // dmid = dh + norm2 backward.
  std::memcpy(c.dmid.data(), c.dh.data(), sizeof(float) * n * H);
  if (lg[kLn2] != nullptr) std::fill(lg[kLn2], lg[kLn2] + H, 0.0f);
  RmsNormBackward(s.xmid.data(), lw[kLn2], s.r2.data(), c.dz.data(), n, H, c.dmid.data(), true, lg[kLn2]);
  // Attention output projection.
  ProjectBackward(c, s, layer, kPo, s.ctx.data(), lw[kWo], c.dmid.data(), n, QD, H, c.dctx.data(), 0.0f, lg[kWo],
                  nullptr);
  std::fill(c.dk.begin(), c.dk.begin() + static_cast<size_t>(n) * KVD, 0.0f);
  std::fill(c.dv.begin(), c.dv.begin() + static_cast<size_t>(n) * KVD, 0.0f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  Enter(kBwdAttn);
  // One task per (sequence, KV head): the query heads of a group add into the same dK and dV, in order,
  // on one thread, each task with its own dP; the same products whatever the thread count.
  gemm::ParallelGemms(B * d.kvHeads, [&](int task, int worker) {
    const int b = task / d.kvHeads, kv = task % d.kvHeads;
    float* dP = c.dP.data() + static_cast<size_t>(worker) * T * T;
    for (int h = kv * groups; h < (kv + 1) * groups; h++) {
      const size_t qoff = static_cast<size_t>(b) * T * QD + static_cast<size_t>(h) * D;
      const size_t kvoff = static_cast<size_t>(b) * T * KVD + static_cast<size_t>(kv) * D;
      const float* p = s.probs.data() + (static_cast<size_t>(b) * d.heads + h) * T * T;
      const float* dctx = c.dctx.data() + qoff;
      // dP = dctx V^T ; dV += P^T dctx
      gemm::Sgemm(gemm::kNoTrans, gemm::kTrans, T, T, D, 1.0f, dctx, QD, s.v.data() + kvoff, KVD, 0.0f,
                  dP, T);
      gemm::Sgemm(gemm::kTrans, gemm::kNoTrans, T, D, T, 1.0f, p, T, dctx, QD, 1.0f, c.dv.data() + kvoff,
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
      gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, T, D, T, scale, dP, T, s.k.data() + kvoff, KVD, 0.0f,
                  c.dq.data() + qoff, QD);
      gemm::Sgemm(gemm::kTrans, gemm::kNoTrans, T, D, T, scale, dP, T, s.q.data() + qoff, QD, 1.0f,
                  c.dk.data() + kvoff, KVD);
    }
  });
  Enter(kBwdElem);
  Rope(c.dq.data(), n, d.heads, D, c.cosT.data(), c.sinT.data(), true);
  Rope(c.dk.data(), n, d.kvHeads, D, c.cosT.data(), c.sinT.data(), true);
  if (d.qkNorm) {
    // Through the per-head norms: reuse dctx / dz-sized scratch for the pre-norm gradients.
    float* dqraw = c.dctx.data();
    if (lg[kQn] != nullptr) std::fill(lg[kQn], lg[kQn] + D, 0.0f);
    if (lg[kKn] != nullptr) std::fill(lg[kKn], lg[kKn] + D, 0.0f);
    RmsNormBackward(s.qraw.data(), lw[kQn], s.rq.data(), c.dq.data(), n * d.heads, D, dqraw, false, lg[kQn]);
    std::memcpy(c.dq.data(), dqraw, sizeof(float) * n * QD);
    std::vector<float>& dkraw = c.dkraw;  // reused like every other buffer
    dkraw.resize(static_cast<size_t>(n) * KVD);
    RmsNormBackward(s.kraw.data(), lw[kKn], s.rk.data(), c.dk.data(), n * d.kvHeads, D, dkraw.data(), false,
                    lg[kKn]);
    std::memcpy(c.dk.data(), dkraw.data(), sizeof(float) * n * KVD);
  }
  ProjectBackward(c, s, layer, kPq, s.xn1.data(), lw[kWq], c.dq.data(), n, H, QD, c.dz.data(), 0.0f, lg[kWq], lg[kBq]);
  ProjectBackward(c, s, layer, kPk, s.xn1.data(), lw[kWk], c.dk.data(), n, H, KVD, c.dz.data(), 1.0f, lg[kWk],
                  lg[kBk]);
  ProjectBackward(c, s, layer, kPv, s.xn1.data(), lw[kWv], c.dv.data(), n, H, KVD, c.dz.data(), 1.0f, lg[kWv],
                  lg[kBv]);
  // dh = dmid + norm1 backward.
  std::memcpy(c.dh.data(), c.dmid.data(), sizeof(float) * n * H);
  if (lg[kLn1] != nullptr) std::fill(lg[kLn1], lg[kLn1] + H, 0.0f);
  RmsNormBackward(s.xin.data(), lw[kLn1], s.r1.data(), c.dz.data(), n, H, c.dh.data(), true, lg[kLn1]);
}

// Logits of rows [r0, r0 + rows) into out [rows, V].
inline void HeadLogits(const Context& c, const float* head, int r0, int rows, float* out, int phase) {
  const Dims& d = c.d;
  const int prev = gPhase;
  Enter(phase);
  gemm::Sgemm(gemm::kNoTrans, gemm::kTrans, rows, d.vocab, d.hidden, 1.0f,
              c.xnfinal.data() + static_cast<size_t>(r0) * d.hidden, d.hidden, head, d.hidden, 0.0f, out, d.vocab);
  Enter(prev);
}

// Forward; returns per-row [logp] or [logp, meanLogit, entropy, correct] into out.
void Forward(Context& c, const W& w, bool save, bool withStats, float* out) {
  const Dims& d = c.d;
  const int B = c.batch, T = c.seqLen, n = B * T, H = d.hidden, V = d.vocab;
  Enter(kFwdElem);
  // Embedding.
  const float* embed = w[0];
  float* x = c.h0.data();
  for (int r = 0; r < n; r++) {
    const int id = c.ids[r];
    std::memcpy(x + static_cast<size_t>(r) * H, embed + static_cast<size_t>(id) * H, sizeof(float) * H);
  }
  for (int l = 0; l < d.layers; l++) {
    LayerSaved& s = c.layers[save ? l : 0];
    float* next = (x == c.h0.data()) ? c.h1.data() : c.h0.data();
    LayerForward(c, l, w, s, x, next);
    x = next;
  }
  Enter(kFwdElem);
  std::memcpy(c.xfinal.data(), x, sizeof(float) * n * H);
  RmsNorm(c.xfinal.data(), w[1], n, H, d.eps, c.xnfinal.data(), c.rfinal.data());
  if (c.hiddenMode) {
    std::memcpy(out, c.xnfinal.data(), sizeof(float) * n * H);
    c.saved = save;
    return;
  }
  const float* head = w[2];
  const int width = withStats ? 4 : 1;
  // Chunks of 128 rows in every mode (same products, same rounding for policy and reference).
  const int chunk = std::min(n, 128);
  for (int r0 = 0; r0 < n; r0 += chunk) {
    const int rows = std::min(chunk, n - r0);
    float* logits = c.headBuf.data() + (c.headStored ? static_cast<size_t>(r0) * V : 0);
    HeadLogits(c, head, r0, rows, logits, kFwdHeadGemm);
    Enter(kFwdHeadSoftmax);
    const bool store = c.headStored;
    gHelper.ParallelFor(static_cast<size_t>(rows), [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; i++) {
        const int r = r0 + static_cast<int>(i);
        float* row = logits + i * V;
        float mx = row[0];
        int arg = 0;
        for (int j = 0; j < V; j++) {
          if (row[j] > mx) {
            mx = row[j];
            arg = j;
          }
        }
        const int label = c.labels[r];
        const float picked = row[label];
        if (withStats) {
          // A separate pass, so that the sum below is the same loop (same rounding) in every mode.
          float sumExp = 0.0f, sumExpX = 0.0f;
          double total = 0.0;
          for (int j = 0; j < V; j++) {
            const float sh = row[j] - mx;
            const float e = std::exp(sh);
            sumExp += e;
            sumExpX += e * sh;
            total += row[j];
          }
          float* o = out + static_cast<size_t>(r) * width;
          o[1] = static_cast<float>(total / V);
          o[2] = std::log(sumExp) - sumExpX / sumExp;
          o[3] = arg == label ? 1.0f : 0.0f;
        }
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
          const float e = std::exp(row[j] - mx);
          sum += e;
          row[j] = e;
        }
        const float lse = std::log(sum) + mx;
        c.lse[r] = lse;
        out[static_cast<size_t>(r) * width] = picked - lse;
        if (store) {
          const float inv = 1.0f / sum;
          for (int j = 0; j < V; j++) row[j] *= inv;
        }
      }
    }, 2);
  }
  c.saved = save;
}

void Backward(Context& c, const W& w, const float* dyIn, const G& g) {
  const Dims& d = c.d;
  const int B = c.batch, T = c.seqLen, n = B * T, H = d.hidden, V = d.vocab;
  ResizeBackward(c);
  const float* head = w[2];
  float* dHead = g[2];
  float* dEmbed = g[0];
  const bool tied = w[2] == w[0];
  // Head: g = dy (onehot - p); dxn = g W; dW = g^T xn. (In hidden mode dy is d(xn) itself.)
  if (c.hiddenMode) std::memcpy(c.dz.data(), dyIn, sizeof(float) * n * H);
  else std::fill(c.dz.begin(), c.dz.begin() + static_cast<size_t>(n) * H, 0.0f);
  const int chunk = c.headStored ? n : std::min(n, 128);
  bool firstHeadGrad = true;
  for (int r0 = 0; c.hiddenMode ? false : r0 < n; r0 += chunk) {
    const int rows = std::min(chunk, n - r0);
    float* buf = c.headBuf.data() + (c.headStored ? static_cast<size_t>(r0) * V : 0);
    Enter(kBwdHeadSoftmax);
    if (!c.headStored) HeadLogits(c, head, r0, rows, buf, kBwdHeadGemm);
    const bool recompute = !c.headStored;
    gHelper.ParallelFor(static_cast<size_t>(rows), [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; i++) {
        float* row = buf + i * V;
        const float dy = dyIn[r0 + i];
        if (recompute) {
          const float lse = c.lse[r0 + i];
          for (int j = 0; j < V; j++) row[j] = -dy * std::exp(row[j] - lse);
        } else {
          for (int j = 0; j < V; j++) row[j] *= -dy;
        }
        row[c.labels[r0 + i]] += dy;
      }
    }, 2);
    Enter(kBwdHeadGemm);
    gemm::Sgemm(gemm::kNoTrans, gemm::kNoTrans, rows, H, V, 1.0f, buf, V, head, H, 0.0f,
                c.dz.data() + static_cast<size_t>(r0) * H, H);
    float* dW = tied ? dEmbed : dHead;
    if (dW != nullptr) {
      gemm::Sgemm(gemm::kTrans, gemm::kNoTrans, V, H, rows, 1.0f, buf, V,
                  c.xnfinal.data() + static_cast<size_t>(r0) * H, H, firstHeadGrad ? 0.0f : 1.0f, dW, H);
    }
    firstHeadGrad = false;
  }
  Enter(kBwdElem);
  // Final norm.
  if (g[1] != nullptr) std::fill(g[1], g[1] + H, 0.0f);
  RmsNormBackward(c.xfinal.data(), w[1], c.rfinal.data(), c.dz.data(), n, H, c.dh.data(), false, g[1]);
  for (int l = d.layers - 1; l >= 0; l--) LayerBackward(c, l, w, g, c.layers[l]);
  Enter(kBwdEmbed);
  // Embedding.
  if (dEmbed != nullptr) {
    if (!tied || c.hiddenMode) std::fill(dEmbed, dEmbed + static_cast<size_t>(V) * H, 0.0f);
    for (int r = 0; r < n; r++) {
      float* dst = dEmbed + static_cast<size_t>(c.ids[r]) * H;
      const float* src = c.dh.data() + static_cast<size_t>(r) * H;
      for (int j = 0; j < H; j++) dst[j] += src[j];
    }
  }
  c.saved = false;
}

// ---------------------------------------------------------------------------------------------
// N-API glue.

void Finalize(napi_env, void* data, void*) { delete static_cast<Context*>(data); }

Context* GetContext(napi_env env, napi_value value) {
  void* data = nullptr;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "decoder: the first argument must be a decoder context");
    return nullptr;
  }
  return static_cast<Context*>(data);
}

size_t WeightSize(const Dims& d, int index) {
  const size_t h = d.hidden, v = d.vocab;
  if (index == 0 || index == 2) return v * h;
  if (index == 1) return h;
  switch ((index - kGlobal) % kPerLayer) {
    case kLn1:
    case kLn2:
      return h;
    case kWq:
      return d.qd() * h;
    case kWk:
    case kWv:
      return d.kvd() * h;
    case kWo:
      return h * d.qd();
    case kWg:
    case kWu:
    case kWd:
      return h * d.inter;
    case kBq:
      return d.qd();
    case kBk:
    case kBv:
      return d.kvd();
    default:
      return d.headDim;  // q/k norm
  }
}

bool Required(const Dims& d, int index) {
  if (index < kGlobal) return true;
  const int k = (index - kGlobal) % kPerLayer;
  if (k == kBq || k == kBk || k == kBv) return d.qkvBias;
  if (k == kQn || k == kKn) return d.qkNorm;
  return true;
}

// Reads an array of Float32Array|null with the layout above; `grads` allows null anywhere.
bool GetWeights(napi_env env, const Dims& d, napi_value array, bool grads, std::vector<float*>* out) {
  bool isArray = false;
  uint32_t length = 0;
  const uint32_t want = kGlobal + static_cast<uint32_t>(d.layers) * kPerLayer;
  if (napi_is_array(env, array, &isArray) != napi_ok || !isArray || napi_get_array_length(env, array, &length) != napi_ok ||
      length != want) {
    napi_throw_type_error(env, nullptr, grads ? "decoder: grads must be an array of 3 + 14 * layers entries"
                                              : "decoder: weights must be an array of 3 + 14 * layers entries");
    return false;
  }
  out->assign(want, nullptr);
  for (uint32_t i = 0; i < want; i++) {
    napi_value item;
    napi_valuetype type;
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_typeof(env, item, &type) != napi_ok) return false;
    if (type == napi_null || type == napi_undefined) {
      if (!grads && Required(d, static_cast<int>(i))) {
        napi_throw_type_error(env, nullptr, "decoder: a required weight is null");
        return false;
      }
      continue;
    }
    void* data;
    size_t len;
    if (!GetTypedArray(env, item, napi_float32_array, &data, &len, "decoder: weights must be Float32Arrays"))
      return false;
    if (len != WeightSize(d, static_cast<int>(i))) {
      napi_throw_range_error(env, nullptr, "decoder: a weight or gradient has the wrong length");
      return false;
    }
    (*out)[i] = static_cast<float*>(data);
  }
  return true;
}

napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void *dimsData, *freqData;
  size_t dimsLen, freqLen;
  if (argc != 2 || !GetTypedArray(env, argv[0], napi_float64_array, &dimsData, &dimsLen, "decoderCreate: dims must be a Float64Array") ||
      !GetTypedArray(env, argv[1], napi_float32_array, &freqData, &freqLen, "decoderCreate: invFreq must be a Float32Array"))
    return nullptr;
  if (dimsLen != 12) {
    napi_throw_range_error(env, nullptr, "decoderCreate: dims must have 12 entries");
    return nullptr;
  }
  const double* v = static_cast<const double*>(dimsData);
  auto* c = new Context();
  Dims& d = c->d;
  d.layers = static_cast<int>(v[0]);
  d.hidden = static_cast<int>(v[1]);
  d.heads = static_cast<int>(v[2]);
  d.kvHeads = static_cast<int>(v[3]);
  d.headDim = static_cast<int>(v[4]);
  d.inter = static_cast<int>(v[5]);
  d.vocab = static_cast<int>(v[6]);
  d.eps = static_cast<float>(v[7]);
  d.qkvBias = v[8] != 0;
  d.qkNorm = v[9] != 0;
  d.window = static_cast<int>(v[10]);
  d.windowStart = static_cast<int>(v[11]);
  if (d.layers < 0 || d.hidden <= 0 || d.heads <= 0 || d.kvHeads <= 0 || d.heads % d.kvHeads != 0 || d.headDim <= 0 ||
      d.headDim % 2 != 0 || d.inter <= 0 || d.vocab <= 0 || freqLen != static_cast<size_t>(d.headDim / 2)) {
    delete c;
    napi_throw_range_error(env, nullptr, "decoderCreate: inconsistent dims");
    return nullptr;
  }
  const float* f = static_cast<const float*>(freqData);
  c->invFreq.assign(f, f + freqLen);
  napi_value result;
  if (napi_create_external(env, c, Finalize, nullptr, &result) != napi_ok) {
    delete c;
    napi_throw_error(env, nullptr, "decoderCreate: napi_create_external failed");
    return nullptr;
  }
  return result;
}

bool GetInts(napi_env env, napi_value value, size_t want, std::vector<int>* out, const char* name, bool nullable) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (nullable && (type == napi_null || type == napi_undefined)) {
    out->clear();
    return true;
  }
  void* data;
  size_t len;
  if (!GetTypedArray(env, value, napi_int32_array, &data, &len, name)) return false;
  if (len != want) {
    napi_throw_range_error(env, nullptr, name);
    return false;
  }
  const int* p = static_cast<const int*>(data);
  out->assign(p, p + len);
  return true;
}

// Optional Float32Array (null/undefined -> nullptr) of exactly `want` elements.
bool OptionalFloats(napi_env env, napi_value value, size_t want, float** out, const char* name) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  *out = nullptr;
  if (type == napi_null || type == napi_undefined) return true;
  void* data;
  size_t len;
  if (!GetTypedArray(env, value, napi_float32_array, &data, &len, name)) return false;
  if (len != want) {
    napi_throw_range_error(env, nullptr, name);
    return false;
  }
  *out = static_cast<float*>(data);
  return true;
}

bool Element(napi_env env, napi_value array, uint32_t i, napi_value* out, const char* name) {
  uint32_t length = 0;
  if (napi_get_array_length(env, array, &length) != napi_ok || i >= length) {
    napi_throw_type_error(env, nullptr, name);
    return false;
  }
  return napi_get_element(env, array, i, out) == napi_ok;
}

// Entries 2i and 2i+1 of `array` as lora_A [rank, in] and lora_B [out, rank] (each may be null).
bool GetLoraPair(napi_env env, napi_value array, size_t i, int rank, int in, int out, float** a, float** b,
                 const char* what) {
  napi_value va, vb;
  return Element(env, array, static_cast<uint32_t>(2 * i), &va, what) &&
         Element(env, array, static_cast<uint32_t>(2 * i + 1), &vb, what) &&
         OptionalFloats(env, va, static_cast<size_t>(rank) * in, a, what) &&
         OptionalFloats(env, vb, static_cast<size_t>(out) * rank, b, what);
}

// Reads (loraWeights, loraShape, loraMasks[, loraGrads]) into c.lora; all null means no adapter.
bool GetLora(napi_env env, Context& c, size_t rows, napi_value weights, napi_value shape, napi_value masks,
             napi_value grads) {
  c.lora.clear();
  napi_valuetype type;
  if (napi_typeof(env, weights, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) return true;
  const Dims& d = c.d;
  const size_t slots = static_cast<size_t>(d.layers) * 7;
  void* shapeData;
  size_t shapeLen;
  if (!GetTypedArray(env, shape, napi_float64_array, &shapeData, &shapeLen, "decoder: loraShape must be a Float64Array"))
    return false;
  if (shapeLen != slots * 2) {
    napi_throw_range_error(env, nullptr, "decoder: loraShape must have 14 entries per layer");
    return false;
  }
  const double* sh = static_cast<const double*>(shapeData);
  bool hasGrads = false;
  if (grads != nullptr) {
    napi_valuetype gt;
    if (napi_typeof(env, grads, &gt) != napi_ok) return false;
    hasGrads = gt != napi_null && gt != napi_undefined;
  }
  bool hasMasks = false;
  {
    napi_valuetype mt;
    if (napi_typeof(env, masks, &mt) != napi_ok) return false;
    hasMasks = mt != napi_null && mt != napi_undefined;
  }
  c.lora.assign(slots, LoraSlot{});
  for (size_t i = 0; i < slots; i++) {
    const int proj = static_cast<int>(i % 7);
    const int rank = static_cast<int>(sh[2 * i + 1]);
    if (rank <= 0) continue;
    const int in = proj == kPo ? d.qd() : proj == kPd ? d.inter : d.hidden;
    const int out = proj == kPq ? d.qd() : (proj == kPk || proj == kPv) ? d.kvd() : (proj == kPg || proj == kPu) ? d.inter : d.hidden;
    LoraSlot& l = c.lora[i];
    l.rank = rank;
    l.scale = static_cast<float>(sh[2 * i]);
    float *pa, *pb;
    if (!GetLoraPair(env, weights, i, rank, in, out, &pa, &pb,
                     "decoder: loraWeights must hold Float32Arrays lora_A [r, in] and lora_B [out, r], 14 per layer"))
      return false;
    if (pa == nullptr || pb == nullptr) {
      napi_throw_type_error(env, nullptr, "decoder: an adapted projection lacks lora_A or lora_B");
      return false;
    }
    l.a = pa;
    l.b = pb;
    if (hasMasks) {
      napi_value m;
      float* pm;
      if (!Element(env, masks, static_cast<uint32_t>(i), &m, "decoder: loraMasks must have 7 entries per layer") ||
          !OptionalFloats(env, m, rows * in, &pm, "decoder: a dropout mask must have batch*seqLen*in entries"))
        return false;
      l.mask = pm;
    }
    if (hasGrads) {
      if (!GetLoraPair(env, grads, i, rank, in, out, &l.da, &l.db,
                       "decoder: loraGrads must hold null or Float32Arrays shaped like lora_A and lora_B, 14 per layer"))
        return false;
    }
  }
  return true;
}

napi_value ForwardJs(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 10 && argc != 13) {
    napi_throw_type_error(env, nullptr, "decoderForward expects 10 arguments, or 13 with LoRA");
    return nullptr;
  }
  Context* c = GetContext(env, argv[0]);
  if (c == nullptr) return nullptr;
  std::vector<float*> wm;
  if (!GetWeights(env, c->d, argv[1], false, &wm)) return nullptr;
  W w(wm.begin(), wm.end());
  int64_t batch, seqLen;
  if (!GetInt(env, argv[6], &batch, "decoderForward: batch must be an int32 >= 0") ||
      !GetInt(env, argv[7], &seqLen, "decoderForward: seqLen must be an int32 >= 0"))
    return nullptr;
  bool save = false, withStats = false;
  CHECK_NAPI(env, napi_get_value_bool(env, argv[8], &save));
  CHECK_NAPI(env, napi_get_value_bool(env, argv[9], &withStats));
  const size_t n = static_cast<size_t>(batch * seqLen);
  std::vector<int> positions;
  if (!GetInts(env, argv[2], n, &c->ids, "decoderForward: ids must be an Int32Array of batch*seqLen", false) ||
      !GetInts(env, argv[3], n, &c->mask, "decoderForward: mask must be an Int32Array of batch*seqLen or null", true) ||
      !GetInts(env, argv[4], n, &positions, "decoderForward: positions must be an Int32Array of batch*seqLen", false) ||
      !GetInts(env, argv[5], n, &c->labels, "decoderForward: labels must be an Int32Array of batch*seqLen or null", true))
    return nullptr;
  napi_valuetype labelsType;
  CHECK_NAPI(env, napi_typeof(env, argv[5], &labelsType));
  c->hiddenMode = labelsType == napi_null || labelsType == napi_undefined;
  for (size_t i = 0; i < n; i++) {
    if (c->ids[i] < 0 || c->ids[i] >= c->d.vocab) {
      napi_throw_range_error(env, nullptr, "decoderForward: a token id is outside [0, vocab)");
      return nullptr;
    }
    if (!c->hiddenMode) c->labels[i] = std::min(std::max(c->labels[i], 0), c->d.vocab - 1);
  }
  if (argc == 13) {
    if (!GetLora(env, *c, n, argv[10], argv[11], argv[12], nullptr)) return nullptr;
  } else {
    c->lora.clear();
  }
  Resize(*c, static_cast<int>(batch), static_cast<int>(seqLen), save);
  const int half = c->d.headDim / 2;
  for (size_t r = 0; r < n; r++) {
    const float pos = static_cast<float>(positions[r]);
    for (int j = 0; j < half; j++) {
      const float f = pos * c->invFreq[j];
      c->cosT[r * half + j] = std::cos(f);
      c->sinT[r * half + j] = std::sin(f);
    }
  }
  const size_t width = c->hiddenMode ? static_cast<size_t>(c->d.hidden) : withStats ? 4 : 1;
  void* outData;
  napi_value buffer, result;
  CHECK_NAPI(env, napi_create_arraybuffer(env, n * width * sizeof(float), &outData, &buffer));
  CHECK_NAPI(env, napi_create_typedarray(env, napi_float32_array, n * width, buffer, 0, &result));
  {
    PhaseClock clock;
    gClock = &clock;
    Forward(*c, w, save, withStats, static_cast<float*>(outData));
  }
  gClock = nullptr;
  return result;
}

napi_value BackwardJs(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 4 && argc != 8) {
    napi_throw_type_error(env, nullptr, "decoderBackward expects 4 arguments, or 8 with LoRA");
    return nullptr;
  }
  Context* c = GetContext(env, argv[0]);
  if (c == nullptr) return nullptr;
  if (!c->saved) {
    napi_throw_error(env, nullptr, "decoderBackward: no saved forward pass (run decoderForward with save = true first)");
    return nullptr;
  }
  std::vector<float*> wm, gm;
  if (!GetWeights(env, c->d, argv[1], false, &wm) || !GetWeights(env, c->d, argv[3], true, &gm)) return nullptr;
  W w(wm.begin(), wm.end());
  void* dyData;
  size_t dyLen;
  if (!GetTypedArray(env, argv[2], napi_float32_array, &dyData, &dyLen, "decoderBackward: dy must be a Float32Array"))
    return nullptr;
  const size_t rowsN = static_cast<size_t>(c->batch) * c->seqLen;
  if (dyLen != (c->hiddenMode ? rowsN * c->d.hidden : rowsN)) {
    napi_throw_range_error(env, nullptr, "decoderBackward: dy must have batch*seqLen (hidden mode: *hidden) entries");
    return nullptr;
  }
  {
    PhaseClock clock;
    gClock = &clock;
    Enter(kBwdElem);
    if (argc == 8) {
    if (!GetLora(env, *c, rowsN, argv[4], argv[5], argv[6], argv[7])) return nullptr;
  } else {
    c->lora.clear();
  }
  Backward(*c, w, static_cast<const float*>(dyData), gm);
  }
  gClock = nullptr;
  return nullptr;
}

// decoderProfile(reset) -> { phase: seconds } accumulated since the last reset.
napi_value Profile(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool reset = false;
  if (argc >= 1) napi_get_value_bool(env, argv[0], &reset);
  napi_value result;
  CHECK_NAPI(env, napi_create_object(env, &result));
  for (int i = 0; i < kPhases; i++) {
    napi_value v;
    CHECK_NAPI(env, napi_create_double(env, gPhaseSeconds[i], &v));
    CHECK_NAPI(env, napi_set_named_property(env, result, kPhaseNames[i], v));
    if (reset) gPhaseSeconds[i] = 0;
  }
  return result;
}

}  // namespace

bool RegisterDecoder(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"decoderCreate", nullptr, Create, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderForward", nullptr, ForwardJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderBackward", nullptr, BackwardJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderProfile", nullptr, Profile, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

}  // namespace prefkit
