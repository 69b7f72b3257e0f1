// The fused decoder's weight layout, in one table: the `weights` (and `grads`) array the decoder takes
// is the global slots, then the per-layer slots once per layer; LoRA adapters come per layer and
// projection. decoderLayout() hands these names to TypeScript, which builds the arrays by name
// (packages/models/src/modeling/native/layout.ts), so this table is the only place the order lives.
#pragma once

#include <cstddef>

namespace prefkit {
namespace decoder {

// The model's sizes and family flags (decoderCreate's dims).
struct Dims {
  int layers, hidden, heads, kvHeads, headDim, inter, vocab;
  float eps;
  bool qkvBias, qkNorm;
  int window, windowStart;  // sliding window (-1: none) from layer windowStart on
  int qd() const { return heads * headDim; }
  int kvd() const { return kvHeads * headDim; }
};

namespace layout {

// A dimension of a slot's shape.
enum class Dim { kOne, kHidden, kVocab, kQuery, kKeyValue, kInter, kHeadDim };
// When a slot holds a weight (else it is null): always, with the family's q/k/v biases, with its q/k norms.
enum class When { kAlways, kQkvBias, kQkNorm };

// X(enumerator, name, rows, cols, when); projection weights are [out, in] as HF stores them.
#define PREFKIT_DECODER_GLOBAL_SLOTS(X)                       \
  X(kEmbed, "embed", kVocab, kHidden, kAlways)                \
  X(kFinalNorm, "final_norm", kHidden, kOne, kAlways)         \
  X(kLmHead, "lm_head", kVocab, kHidden, kAlways) /* tied: the embedding again */

#define PREFKIT_DECODER_LAYER_SLOTS(X)                        \
  X(kInputNorm, "input_norm", kHidden, kOne, kAlways)         \
  X(kWq, "q", kQuery, kHidden, kAlways)                       \
  X(kWk, "k", kKeyValue, kHidden, kAlways)                    \
  X(kWv, "v", kKeyValue, kHidden, kAlways)                    \
  X(kWo, "o", kHidden, kQuery, kAlways)                       \
  X(kPostNorm, "post_norm", kHidden, kOne, kAlways)           \
  X(kWg, "gate", kInter, kHidden, kAlways)                    \
  X(kWu, "up", kInter, kHidden, kAlways)                      \
  X(kWd, "down", kHidden, kInter, kAlways)                    \
  X(kBq, "q_bias", kQuery, kOne, kQkvBias)                    \
  X(kBk, "k_bias", kKeyValue, kOne, kQkvBias)                 \
  X(kBv, "v_bias", kKeyValue, kOne, kQkvBias)                 \
  X(kQn, "q_norm", kHeadDim, kOne, kQkNorm)                   \
  X(kKn, "k_norm", kHeadDim, kOne, kQkNorm)

// X(enumerator, name, weight slot): the projections a LoRA adapter may wrap; in = the weight's cols,
// out = its rows. In the order a layer applies them: the TypeScript side draws the adapters' dropout
// seeds in this order, as the tfjs decoder does.
#define PREFKIT_DECODER_PROJECTIONS(X) \
  X(kPq, "q", kWq)                     \
  X(kPk, "k", kWk)                     \
  X(kPv, "v", kWv)                     \
  X(kPo, "o", kWo)                     \
  X(kPg, "gate", kWg)                  \
  X(kPu, "up", kWu)                    \
  X(kPd, "down", kWd)

#define PREFKIT_ENUMERATOR(e, ...) e,
enum Global { PREFKIT_DECODER_GLOBAL_SLOTS(PREFKIT_ENUMERATOR) kGlobalSlots };
enum Layer { PREFKIT_DECODER_LAYER_SLOTS(PREFKIT_ENUMERATOR) kLayerSlots };
enum Projection { PREFKIT_DECODER_PROJECTIONS(PREFKIT_ENUMERATOR) kProjections };
#undef PREFKIT_ENUMERATOR

struct Slot {
  const char* name;
  Dim rows, cols;
  When when;
};
struct ProjectionSlot {
  const char* name;
  Layer weight;
};

#define PREFKIT_SLOT(e, name, rows, cols, when) {name, Dim::rows, Dim::cols, When::when},
inline constexpr Slot kGlobal[kGlobalSlots] = {PREFKIT_DECODER_GLOBAL_SLOTS(PREFKIT_SLOT)};
inline constexpr Slot kLayer[kLayerSlots] = {PREFKIT_DECODER_LAYER_SLOTS(PREFKIT_SLOT)};
#undef PREFKIT_SLOT
#define PREFKIT_PROJECTION(e, name, weight) {name, weight},
inline constexpr ProjectionSlot kProjection[kProjections] = {PREFKIT_DECODER_PROJECTIONS(PREFKIT_PROJECTION)};
#undef PREFKIT_PROJECTION

// Entries of the weights array for `layers` layers.
constexpr size_t SlotCount(int layers) { return kGlobalSlots + static_cast<size_t>(layers) * kLayerSlots; }
// The table entry of weights[index].
const Slot& SlotAt(size_t index);
// Elements of a weight in that slot, and its rows.
size_t SlotSize(const Dims& d, size_t index);
size_t SlotRows(const Dims& d, size_t index);
// Whether that slot must hold a weight for this family.
bool SlotRequired(const Dims& d, size_t index);
// A LoRA projection's input and output widths.
int ProjectionIn(const Dims& d, int projection);
int ProjectionOut(const Dims& d, int projection);

}  // namespace layout
}  // namespace decoder
}  // namespace prefkit
