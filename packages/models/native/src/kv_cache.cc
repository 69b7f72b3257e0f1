// See kv_cache.h.
#include "kv_cache.h"

#include <algorithm>
#include <cstring>

namespace prefkit {
namespace decoder {
namespace {

// One row of keys and values at `column` for every KV head.
void StoreColumn(KvCache& c, int layer, int b, int column, const float* k, const float* v) {
  const int slot = SlotOf(c, layer, column);
  const size_t bytes = sizeof(float) * c.headDim;
  for (int h = 0; h < c.kvHeads; h++) {
    std::memcpy(KeysOf(c, layer, b, h) + static_cast<size_t>(slot) * c.headDim, k + static_cast<size_t>(h) * c.headDim,
                bytes);
    std::memcpy(ValuesOf(c, layer, b, h) + static_cast<size_t>(slot) * c.headDim,
                v + static_cast<size_t>(h) * c.headDim, bytes);
  }
}

}  // namespace

void ResetCache(KvCache& c, const Dims& d, int batch, int capacity) {
  c.layers = d.layers;
  c.batch = batch;
  c.kvHeads = d.kvHeads;
  c.headDim = d.headDim;
  c.capacity = capacity;
  c.columns = 0;
  c.slots.assign(d.layers, capacity);
  c.window.assign(d.layers, 0);
  c.firstReal.assign(batch, 0);
  c.keys.resize(d.layers);
  c.values.resize(d.layers);
  for (int l = 0; l < d.layers; l++) {
    if (d.window > 0 && l >= d.windowStart) {
      c.window[l] = d.window;
      c.slots[l] = std::max(1, std::min(capacity, d.window));
    }
    const size_t size = static_cast<size_t>(batch) * d.kvHeads * c.slots[l] * d.headDim;
    c.keys[l].resize(size);
    c.values[l].resize(size);
  }
}

void StorePrefill(KvCache& c, int layer, int seqLen, const float* k, const float* v) {
  const size_t kvd = static_cast<size_t>(c.kvHeads) * c.headDim;
  // In column order, so that a ring ends up holding the last columns.
  for (int b = 0; b < c.batch; b++)
    for (int t = 0; t < seqLen; t++) {
      const size_t row = static_cast<size_t>(b) * seqLen + t;
      StoreColumn(c, layer, b, t, k + row * kvd, v + row * kvd);
    }
}

void StoreStep(KvCache& c, int layer, const float* k, const float* v) {
  const size_t kvd = static_cast<size_t>(c.kvHeads) * c.headDim;
  for (int b = 0; b < c.batch; b++) StoreColumn(c, layer, b, c.columns, k + b * kvd, v + b * kvd);
}

}  // namespace decoder
}  // namespace prefkit
