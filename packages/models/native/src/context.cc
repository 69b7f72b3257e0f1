// Buffer sizing of a decoder context (context.h).
#include <algorithm>
#include <cmath>

#include "context.h"
#include "engine.h"

namespace prefkit {
namespace decoder {

void Resize(Context& c, int batch, int seqLen, bool save) {
  const Dims& d = c.d;
  const size_t n = static_cast<size_t>(batch) * seqLen;
  const size_t h = d.hidden, qd = d.qd(), kvd = d.kvd(), in = d.inter;
  const size_t probs = static_cast<size_t>(batch) * d.heads * seqLen * seqLen;
  const bool everyLayer = save && !c.checkpoint;
  const size_t want = everyLayer ? static_cast<size_t>(d.layers) : 1;
  if (c.layers.size() < want) c.layers.resize(want);
  // Checkpointing: free the other layers' activations of an earlier call without it.
  if (save && c.checkpoint && c.layers.size() > 1) c.layers.resize(1);
  if (save && c.checkpoint) {
    c.inputs.resize(static_cast<size_t>(d.layers));
    for (auto& input : c.inputs) input.resize(n * h);
  } else {
    c.inputs.clear();
    c.inputs.shrink_to_fit();
  }
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
  c.dP.resize(static_cast<size_t>(engine::Threads()) * c.seqLen * c.seqLen);  // one [T, T] per worker
}

void RopeTables(Context& c, const std::vector<int>& positions) {
  const int half = c.d.headDim / 2;
  for (size_t r = 0; r < positions.size(); r++) {
    const float pos = static_cast<float>(positions[r]);
    for (int j = 0; j < half; j++) {
      const float f = pos * c.invFreq[j];
      c.cosT[r * half + j] = std::cos(f);
      c.sinT[r * half + j] = std::sin(f);
    }
  }
}

}  // namespace decoder
}  // namespace prefkit
