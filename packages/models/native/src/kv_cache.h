// The decode step's key/value cache (kv_cache.cc), preallocated and written in place: per layer, keys
// (after rope and Qwen3's k-norm) and values laid out [batch, kvHeads, slots, headDim], each KV head
// stored once for the query heads of its group (no repeat_kv). Columns are the generate loop's: the
// left-padded prompt, then one per step for every row (stopped rows too, as transformers feeds them).
// A sliding-window layer keeps a ring of `window` slots (column j in slot j % window), which is all its
// queries see; other layers have a slot per column. Each row's left padding is masked from its first
// real column on.
#pragma once

#include <cstddef>
#include <vector>

#include "layout.h"

namespace prefkit {
namespace decoder {

struct KvCache {
  int layers = 0, batch = 0, kvHeads = 0, headDim = 0;
  int capacity = 0;  // columns it can hold: the prompt and every new token
  int columns = 0;   // columns written so far
  std::vector<int> slots;       // per layer: capacity, or the sliding window when that is smaller
  std::vector<int> window;      // per layer: the sliding window, or 0 for full attention
  std::vector<int> firstReal;   // per row: its first real (non-padding) column
  std::vector<std::vector<float>> keys, values;  // per layer; buffers grow and are then reused
};

// Sizes the cache for `batch` rows and `capacity` columns (reusing its buffers) and empties it.
void ResetCache(KvCache& c, const Dims& d, int batch, int capacity);

// Keys and values of (layer, row b, KV head h): `slots[layer]` rows of headDim.
inline float* KeysOf(KvCache& c, int layer, int b, int h) {
  return c.keys[layer].data() + (static_cast<size_t>(b) * c.kvHeads + h) * c.slots[layer] * c.headDim;
}
inline float* ValuesOf(KvCache& c, int layer, int b, int h) {
  return c.values[layer].data() + (static_cast<size_t>(b) * c.kvHeads + h) * c.slots[layer] * c.headDim;
}
// The slot of `column` in `layer`.
inline int SlotOf(const KvCache& c, int layer, int column) { return column % c.slots[layer]; }
// The first column a query at `column` of row b attends to in `layer` (its window and the row's padding).
inline int FirstVisible(const KvCache& c, int layer, int b, int column) {
  const int w = c.window[layer];
  const int lo = w > 0 ? column - w + 1 : 0;
  return lo > c.firstReal[b] ? lo : c.firstReal[b];
}

// Stores the prefill's keys and values of `layer`, [batch * seqLen, kvHeads * headDim] (columns 0..seqLen).
void StorePrefill(KvCache& c, int layer, int seqLen, const float* k, const float* v);
// Stores one step's keys and values of `layer`, [batch, kvHeads * headDim], at column c.columns.
void StoreStep(KvCache& c, int layer, const float* k, const float* v);

}  // namespace decoder
}  // namespace prefkit
