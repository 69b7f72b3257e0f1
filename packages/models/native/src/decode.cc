// The decode step (decode.h). Prefill is the fused forward in hidden mode with its attention storing
// keys and values into the cache (a prompt batch of at most 32 rows runs its projections on the gemv
// kernel, projection.cc); a step embeds one token per row and runs each layer as the fused
// decoder does (RMSNorm, q/k/v with biases and adapters, q/k norms, rope, attention, o, RMSNorm, SwiGLU),
// but on a few rows: each projection is a gemv over the weight in place, the rows of a group of
// projections that share an input (q/k/v, gate/up) split over the pool in one go, and attention reads
// the cache per (row, head). A 16-bit frozen weight (a model loaded with dtype "bfloat16") is bound as
// its pack (Context::packs, as the fused forward takes it) and runs core's packed GEMM over the step's
// rows, its bf16 values widened exactly; a bf16 embedding is gathered from its bits. Every output
// element's operations do not depend on the thread count.
#include "decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "decoder.h"
#include "elementwise.h"
#include "engine.h"
#include "prefkit/row_tasks.h"

namespace prefkit {
namespace decoder {
namespace {

using namespace layout;

// Y = X W^T + beta Y for the `rows` rows of the fp32 weight W [*, in] from `row0` (all m rows of X).
void RowsGemv(int m, int64_t row0, int64_t rows, int64_t in, const float* x, const float* w, float beta, float* y,
              int64_t ldy) {
  engine::Gemv(m, rows, in, x, in, w + row0 * in, beta, y + row0, ldy);
}

// fn(begin, end) over the rows [0, n) of a group of weights in tasks of RowTaskSize rows (at least
// `minimum`, whole blocks of 16: the gemv kernel's widest), handed out to whichever thread is free, as the
// engine's gemv splits one weight. Which thread computes a row does not change its bits.
template <typename F>
void SplitRows(size_t n, size_t minimum, const F& fn) {
  const size_t threads = static_cast<size_t>(engine::Threads());
  const size_t chunk = static_cast<size_t>(
      RowTaskSize(static_cast<int64_t>(n), static_cast<int64_t>(minimum), static_cast<int64_t>(threads), 16));
  const int tasks = static_cast<int>((n + chunk - 1) / chunk);
  if (threads <= 1 || tasks <= 1) {
    fn(0, n);
    return;
  }
  engine::ParallelGemms(tasks, [&](int task, int) {
    const size_t begin = static_cast<size_t>(task) * chunk;
    fn(begin, std::min(n, begin + chunk));
  });
}

// One projection of a group: y [batch, out] = x W^T (+ bias) (+ its adapter's update).
struct Output {
  int projection;  // layout::Projection (its adapter, and its weight's slot)
  const float* bias;
  float* y;
};

// y [batch, out] += bias, over the output columns [lo, hi).
void AddBias(const float* bias, int batch, int64_t lo, int64_t hi, int out, float* y) {
  for (int b = 0; b < batch; b++)
    for (int64_t j = lo; j < hi; j++) y[static_cast<size_t>(b) * out + j] += bias[j];
}

// The projections of `outputs` (which share the input x [batch, in]) with their biases and adapters:
// the adapters' low-rank inputs first; a projection whose weight is a pack (a 16-bit frozen weight,
// widened exactly per block) then runs core's packed GEMM over all rows, and the rows of the float32
// weights split over the pool in one go, each read once.
template <size_t N>
void Project(DecodeSession& s, int layer, const float* const* w, const float* x, int in, const Output (&outputs)[N]) {
  Context& c = s.prefill;
  const int batch = s.batch;
  const LoraSlot* adapters[N] = {};
  const PackedWeight* packs[N] = {};
  int64_t total = 0, lowSize = 0;
  int64_t begin[N + 1];
  for (size_t p = 0; p < N; p++) {
    begin[p] = total;
    packs[p] = LayerPack(c, layer, kProjection[outputs[p].projection].weight);
    // A packed projection has no rows in the gemv's split.
    if (packs[p] == nullptr) total += ProjectionOut(c.d, outputs[p].projection);
    if (!c.lora.empty()) {
      const LoraSlot& l = c.lora[static_cast<size_t>(layer) * kProjections + outputs[p].projection];
      if (l.a != nullptr) {
        adapters[p] = &l;
        lowSize += static_cast<int64_t>(batch) * l.rank;
      }
    }
  }
  begin[N] = total;
  // scale * (x A^T), per adapted projection, into s.low.
  if (s.low.size() < static_cast<size_t>(lowSize)) s.low.resize(lowSize);
  float* lows[N] = {};
  int64_t at = 0;
  for (size_t p = 0; p < N; p++) {
    const LoraSlot* l = adapters[p];
    if (l == nullptr) continue;
    lows[p] = s.low.data() + at;
    at += static_cast<int64_t>(batch) * l->rank;
    RowsGemv(batch, 0, l->rank, in, x, l->a, 0.0f, lows[p], l->rank);
    for (int64_t i = 0; i < static_cast<int64_t>(batch) * l->rank; i++) lows[p][i] *= l->scale;
  }
  // The packed projections: several of them (q/k/v, gate/up) each a task of its own, its GEMM then
  // single-threaded (a GEMM of a few rows and a small weight would run on one thread anyway).
  size_t packed[N];
  int count = 0;
  for (size_t p = 0; p < N; p++)
    if (packs[p] != nullptr) packed[count++] = p;
  const auto runPacked = [&](size_t p) {
    const Output& o = outputs[p];
    const int out = ProjectionOut(c.d, o.projection);
    engine::GemmPacked(batch, x, in, packs[p]->packed, false, 1.0f, 0.0f, o.y, out);
    if (o.bias != nullptr) AddBias(o.bias, batch, 0, out, out, o.y);
    if (const LoraSlot* l = adapters[p]) RowsGemv(batch, 0, out, l->rank, lows[p], l->b, 1.0f, o.y, out);
  };
  if (count > 1) engine::ParallelGemms(count, [&](int task, int) { runPacked(packed[task]); });
  else if (count == 1) runPacked(packed[0]);
  if (total == 0) return;
  const size_t minimum = std::max<size_t>(4, 16384 / static_cast<size_t>(in));  // ~64 KB of weight per chunk
  SplitRows(
      static_cast<size_t>(total), minimum,
      [&](size_t chunkBegin, size_t chunkEnd) {
        for (size_t p = 0; p < N; p++) {
          const int64_t lo = std::max<int64_t>(chunkBegin, begin[p]) - begin[p];
          const int64_t hi = std::min<int64_t>(chunkEnd, begin[p + 1]) - begin[p];
          if (lo >= hi) continue;
          const int out = static_cast<int>(begin[p + 1] - begin[p]);
          const Output& o = outputs[p];
          RowsGemv(batch, lo, hi - lo, in, x, w[kProjection[o.projection].weight], 0.0f, o.y, out);
          if (o.bias != nullptr) AddBias(o.bias, batch, lo, hi, out, o.y);
          if (const LoraSlot* l = adapters[p])
            RowsGemv(batch, lo, hi - lo, l->rank, lows[p], l->b, 1.0f, o.y, out);
        }
      });
}

// Softmax attention of each row's query heads (s.q) over the cache's visible columns into s.ctx.
void Attend(DecodeSession& s, int layer) {
  const Dims& d = s.prefill.d;
  KvCache& cache = s.cache;
  const int D = d.headDim, QD = d.qd(), groups = d.heads / d.kvHeads, column = cache.columns;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const size_t tasks = static_cast<size_t>(s.batch) * d.heads;
  const int slots = cache.slots[layer];
  engine::ParallelFor(
      tasks,
      [&](size_t t0, size_t t1) {
        for (size_t task = t0; task < t1; task++) {
          const int b = static_cast<int>(task / d.heads), h = static_cast<int>(task % d.heads), kv = h / groups;
          const float* q = s.q.data() + static_cast<size_t>(b) * QD + static_cast<size_t>(h) * D;
          const float* keys = KeysOf(cache, layer, b, kv);
          const float* values = ValuesOf(cache, layer, b, kv);
          float* scores = s.scores.data() + task * cache.capacity;
          const int first = FirstVisible(cache, layer, b, column);
          float mx = -INFINITY;
          for (int j = first; j <= column; j++) {
            const float* key = keys + static_cast<size_t>(j % slots) * D;
            float dot = 0.0f;
            for (int i = 0; i < D; i++) dot += q[i] * key[i];
            scores[j - first] = dot * scale;
            mx = std::max(mx, scores[j - first]);
          }
          float sum = 0.0f;
          for (int j = first; j <= column; j++) sum += (scores[j - first] = std::exp(scores[j - first] - mx));
          const float inv = 1.0f / sum;
          float* ctx = s.ctx.data() + static_cast<size_t>(b) * QD + static_cast<size_t>(h) * D;
          std::fill(ctx, ctx + D, 0.0f);
          for (int j = first; j <= column; j++) {
            const float p = scores[j - first] * inv;
            const float* value = values + static_cast<size_t>(j % slots) * D;
            for (int i = 0; i < D; i++) ctx[i] += p * value[i];
          }
        }
      },
      std::max<size_t>(1, 8192 / (static_cast<size_t>(column + 1) * D)));
}

void AddInto(float* x, const float* y, size_t count) {
  for (size_t i = 0; i < count; i++) x[i] += y[i];
}

// One layer over the rows of s.x (in place), its keys and values stored at the cache's current column.
void LayerStep(DecodeSession& s, int layer, const float* const* w) {
  const Dims& d = s.prefill.d;
  const int B = s.batch, H = d.hidden;
  const size_t count = static_cast<size_t>(B) * H;
  const Context& c = s.prefill;
  RmsNorm(s.x.data(), w[kInputNorm], B, H, d.eps, s.xn.data(), s.rms.data());
  Project(s, layer, w, s.xn.data(), H,
          {Output{kPq, w[kBq], s.q.data()}, Output{kPk, w[kBk], s.k.data()}, Output{kPv, w[kBv], s.v.data()}});
  if (d.qkNorm) {
    RmsNorm(s.q.data(), w[kQn], B * d.heads, d.headDim, d.eps, s.q.data(), s.rms.data());
    RmsNorm(s.k.data(), w[kKn], B * d.kvHeads, d.headDim, d.eps, s.k.data(), s.rms.data());
  }
  Rope(s.q.data(), B, d.heads, d.headDim, c.cosT.data(), c.sinT.data(), false);
  Rope(s.k.data(), B, d.kvHeads, d.headDim, c.cosT.data(), c.sinT.data(), false);
  StoreStep(s.cache, layer, s.k.data(), s.v.data());
  Attend(s, layer);
  Project(s, layer, w, s.ctx.data(), d.qd(), {Output{kPo, nullptr, s.o.data()}});
  AddInto(s.x.data(), s.o.data(), count);
  RmsNorm(s.x.data(), w[kPostNorm], B, H, d.eps, s.xn.data(), s.rms.data());
  Project(s, layer, w, s.xn.data(), H, {Output{kPg, nullptr, s.gate.data()}, Output{kPu, nullptr, s.up.data()}});
  float* gate = s.gate.data();
  const float* up = s.up.data();
  engine::ParallelFor(static_cast<size_t>(B) * d.inter, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) gate[i] = gate[i] * Sigmoid(gate[i]) * up[i];
  });
  Project(s, layer, w, s.gate.data(), d.inter, {Output{kPd, nullptr, s.o.data()}});
  AddInto(s.x.data(), s.o.data(), count);
}

// The LM head over final-normed rows xn [batch, hidden] into logits [batch, vocab]: the gemv split over the
// pool, or the packed GEMM for a 16-bit head.
void Head(DecodeSession& s, const float* xn, float* logits) {
  const Dims& d = s.prefill.d;
  if (const PackedWeight* pack = PackAt(s.prefill, kLmHead)) {
    engine::GemmPacked(s.batch, xn, d.hidden, pack->packed, false, 1.0f, 0.0f, logits, d.vocab);
    return;
  }
  engine::Gemv(s.batch, d.vocab, d.hidden, xn, d.hidden, s.w[kLmHead], 0.0f, logits, d.vocab);
}

void SizeScratch(DecodeSession& s) {
  const Dims& d = s.prefill.d;
  const size_t B = s.batch;
  s.x.resize(B * d.hidden);
  s.xn.resize(B * d.hidden);
  s.rms.resize(B * std::max(d.heads, 1));
  s.q.resize(B * d.qd());
  s.k.resize(B * d.kvd());
  s.v.resize(B * d.kvd());
  s.ctx.resize(B * d.qd());
  s.o.resize(B * d.hidden);
  s.gate.resize(B * d.inter);
  s.up.resize(B * d.inter);
  s.scores.resize(B * d.heads * static_cast<size_t>(s.cache.capacity));
}

}  // namespace

bool Prefill(DecodeSession& s, int batch, int seqLen, int capacity, const std::vector<int>& positions, float* logits,
             const char** error) {
  Context& c = s.prefill;
  const Dims& d = c.d;
  if (seqLen <= 0 || capacity < seqLen) {
    s.cache.capacity = 0;
    *error = "decodePrefill: the cache must hold at least the prompt (capacity >= seqLen > 0)";
    return false;
  }
  // Each row: padding, then real tokens only (what generate() accepts).
  std::vector<int> firstReal(batch, 0);
  for (int b = 0; b < batch && !c.mask.empty(); b++) {
    const int* row = c.mask.data() + static_cast<size_t>(b) * seqLen;
    int first = 0;
    while (first < seqLen && row[first] == 0) first++;
    for (int t = first; t < seqLen; t++)
      if (row[t] == 0) first = seqLen;
    if (first >= seqLen) {
      s.cache.capacity = 0;  // no step runs on a failed prefill
      *error = "decodePrefill: every mask row needs left padding then at least one real token";
      return false;
    }
    firstReal[b] = first;
  }
  s.batch = batch;
  ResetCache(s.cache, d, batch, capacity);
  s.cache.firstReal = firstReal;
  c.labels.clear();
  c.hiddenMode = true;
  Resize(c, batch, seqLen, false);
  RopeTables(c, positions);
  SizeScratch(s);
  const size_t n = static_cast<size_t>(batch) * seqLen;
  s.hidden.resize(n * d.hidden);
  c.kvSink = &s.cache;
  Forward(c, s.w, false, false, s.hidden.data());
  c.kvSink = nullptr;
  s.cache.columns = seqLen;
  for (int b = 0; b < batch; b++) {
    std::memcpy(s.xn.data() + static_cast<size_t>(b) * d.hidden,
                s.hidden.data() + (static_cast<size_t>(b) * seqLen + seqLen - 1) * d.hidden, sizeof(float) * d.hidden);
  }
  Head(s, s.xn.data(), logits);
  return true;
}

bool Step(DecodeSession& s, const int* ids, const std::vector<int>& positions, float* logits, const char** error) {
  Context& c = s.prefill;
  const Dims& d = c.d;
  if (s.cache.columns >= s.cache.capacity) {
    *error = "decodeStep: the cache is full (decodePrefill's capacity)";
    return false;
  }
  for (int b = 0; b < s.batch; b++)
    GatherRow(s.w[kEmbed], c.embedBf16, ids[b], d.hidden, s.x.data() + static_cast<size_t>(b) * d.hidden);
  RopeTables(c, positions);  // the prefill sized the tables for at least `batch` rows
  for (int l = 0; l < d.layers; l++) LayerStep(s, l, LayerSlots(s.w, l));
  s.cache.columns++;
  RmsNorm(s.x.data(), s.w[kFinalNorm], s.batch, d.hidden, d.eps, s.xn.data(), s.rms.data());
  Head(s, s.xn.data(), logits);
  return true;
}

}  // namespace decoder
}  // namespace prefkit
