// The LM head and the selective log-softmax, forward and backward: logits = xn W^T in chunks of 128
// rows, log p(label) = logit[label] - logsumexp(logits) (with the statistics the trainers log), and
// the gradient dy (onehot(label) - softmax) back into d(xn) and dW. The softmax of every row is kept
// for the backward pass when it fits in 256 MB, else recomputed chunk by chunk from the saved lse.
#include <algorithm>
#include <cmath>

#include "decoder.h"
#include "engine.h"
#include "profiler.h"

namespace prefkit {
namespace decoder {
namespace {

// Logits of rows [r0, r0 + rows) into out [rows, V]: xn Wᵀ, with the packed head when there is one.
void HeadLogits(const Context& c, const float* head, int r0, int rows, float* out, int phase) {
  const Dims& d = c.d;
  const int prev = profiler::Current();
  profiler::Enter(phase);
  const float* xn = c.xnfinal.data() + static_cast<size_t>(r0) * d.hidden;
  const PackedWeight* pack = PackAt(c, layout::kLmHead);
  if (pack != nullptr) {
    engine::GemmPacked(rows, xn, d.hidden, pack->packed, false, 1.0f, 0.0f, out, d.vocab);
  } else {
    engine::Gemm(engine::kNoTrans, engine::kTrans, rows, d.vocab, d.hidden, 1.0f, xn, d.hidden, head, d.hidden, 0.0f,
                 out, d.vocab, c.compute);
  }
  profiler::Enter(prev);
}

}  // namespace

void HeadForward(Context& c, const float* head, bool withStats, float* out) {
  const int n = c.batch * c.seqLen, V = c.d.vocab;
  const int width = withStats ? 4 : 1;
  // Chunks of 128 rows in every mode (same products, same rounding for policy and reference).
  const int chunk = std::min(n, 128);
  for (int r0 = 0; r0 < n; r0 += chunk) {
    const int rows = std::min(chunk, n - r0);
    float* logits = c.headBuf.data() + (c.headStored ? static_cast<size_t>(r0) * V : 0);
    HeadLogits(c, head, r0, rows, logits, profiler::kFwdHeadGemm);
    profiler::Enter(profiler::kFwdHeadSoftmax);
    const bool store = c.headStored;
    engine::ParallelFor(
        static_cast<size_t>(rows),
        [&](size_t begin, size_t end) {
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
        },
        2);
  }
}

void HeadBackward(Context& c, const float* head, const float* dyIn, float* dW) {
  const int n = c.batch * c.seqLen, H = c.d.hidden, V = c.d.vocab;
  // g = dy (onehot - p); dxn = g W; dW = g^T xn.
  std::fill(c.dz.begin(), c.dz.begin() + static_cast<size_t>(n) * H, 0.0f);
  const int chunk = c.headStored ? n : std::min(n, 128);
  bool firstHeadGrad = true;
  for (int r0 = 0; r0 < n; r0 += chunk) {
    const int rows = std::min(chunk, n - r0);
    float* buf = c.headBuf.data() + (c.headStored ? static_cast<size_t>(r0) * V : 0);
    profiler::Enter(profiler::kBwdHeadSoftmax);
    if (!c.headStored) HeadLogits(c, head, r0, rows, buf, profiler::kBwdHeadGemm);
    const bool recompute = !c.headStored;
    engine::ParallelFor(
        static_cast<size_t>(rows),
        [&](size_t begin, size_t end) {
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
        },
        2);
    profiler::Enter(profiler::kBwdHeadGemm);
    float* dz = c.dz.data() + static_cast<size_t>(r0) * H;
    const PackedWeight* pack = PackAt(c, layout::kLmHead);
    if (pack != nullptr) engine::GemmPacked(rows, buf, V, pack->packed, true, 1.0f, 0.0f, dz, H);
    else engine::Gemm(engine::kNoTrans, engine::kNoTrans, rows, H, V, 1.0f, buf, V, head, H, 0.0f, dz, H, c.compute);
    if (dW != nullptr) {
      engine::Gemm(engine::kTrans, engine::kNoTrans, V, H, rows, 1.0f, buf, V,
                   c.xnfinal.data() + static_cast<size_t>(r0) * H, H, firstHeadGrad ? 0.0f : 1.0f, dW, H, c.compute);
    }
    firstHeadGrad = false;
  }
}

}  // namespace decoder
}  // namespace prefkit
