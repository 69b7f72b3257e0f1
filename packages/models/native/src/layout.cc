// Sizes and presence of the layout's slots (layout.h).
#include "layout.h"

namespace prefkit {
namespace decoder {
namespace layout {
namespace {

size_t Size(const Dims& d, Dim dim) {
  switch (dim) {
    case Dim::kOne:
      return 1;
    case Dim::kHidden:
      return d.hidden;
    case Dim::kVocab:
      return d.vocab;
    case Dim::kQuery:
      return d.qd();
    case Dim::kKeyValue:
      return d.kvd();
    case Dim::kInter:
      return d.inter;
    case Dim::kHeadDim:
      return d.headDim;
  }
  return 0;
}

}  // namespace

const Slot& SlotAt(size_t index) {
  return index < kGlobalSlots ? kGlobal[index] : kLayer[(index - kGlobalSlots) % kLayerSlots];
}

size_t SlotSize(const Dims& d, size_t index) {
  const Slot& s = SlotAt(index);
  return Size(d, s.rows) * Size(d, s.cols);
}

size_t SlotRows(const Dims& d, size_t index) { return Size(d, SlotAt(index).rows); }

bool SlotRequired(const Dims& d, size_t index) {
  switch (SlotAt(index).when) {
    case When::kAlways:
      return true;
    case When::kQkvBias:
      return d.qkvBias;
    case When::kQkNorm:
      return d.qkNorm;
  }
  return true;
}

int ProjectionIn(const Dims& d, int projection) {
  return static_cast<int>(Size(d, kLayer[kProjection[projection].weight].cols));
}

int ProjectionOut(const Dims& d, int projection) {
  return static_cast<int>(Size(d, kLayer[kProjection[projection].weight].rows));
}

}  // namespace layout
}  // namespace decoder
}  // namespace prefkit
