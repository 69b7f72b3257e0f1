// See arguments.h.
#include "arguments.h"

#include <cstdio>

#include "prefkit/napi_util.h"

namespace prefkit {
namespace decoder {
namespace {

bool IsNullish(napi_env env, napi_value value, bool* nullish) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  *nullish = type == napi_null || type == napi_undefined;
  return true;
}

// Optional Float32Array (null/undefined -> nullptr) of exactly `want` elements.
bool OptionalFloats(napi_env env, napi_value value, size_t want, float** out, const char* name) {
  bool nullish;
  if (!IsNullish(env, value, &nullish)) return false;
  *out = nullptr;
  if (nullish) return true;
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

// Whether slot `index` may hold a pack: the projections' weights and the LM head.
bool Packable(size_t index) {
  if (index < layout::kGlobalSlots) return index == layout::kLmHead;
  const size_t slot = (index - layout::kGlobalSlots) % layout::kLayerSlots;
  for (const auto& p : layout::kProjection)
    if (static_cast<size_t>(p.weight) == slot) return true;
  return false;
}

// A pack in slot `index`: one of that slot's shape, in a slot that takes packs.
bool TakePack(napi_env env, const Dims& d, uint32_t index, const PackedWeight* pack, Packs* packs) {
  const size_t rows = layout::SlotRows(d, index), cols = layout::SlotSize(d, index) / rows;
  if (packs == nullptr || !Packable(index) || static_cast<size_t>(pack->rows) != rows ||
      static_cast<size_t>(pack->cols) != cols) {
    char message[180];
    std::snprintf(message, sizeof(message),
                  "decoder: the packed weight in %s (entry %u) is [%d, %d]; that slot takes %s",
                  layout::SlotAt(index).name, index, pack->rows, pack->cols,
                  packs != nullptr && Packable(index) ? "another shape" : "a Float32Array only");
    napi_throw_range_error(env, nullptr, message);
    return false;
  }
  if (packs->empty()) packs->assign(layout::SlotCount(d.layers), nullptr);
  (*packs)[index] = pack;
  return true;
}

}  // namespace

Context* GetContext(napi_env env, napi_value value) {
  void* data = nullptr;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "decoder: the first argument must be a decoder context");
    return nullptr;
  }
  return static_cast<Context*>(data);
}

bool GetWeights(napi_env env, const Dims& d, napi_value array, bool grads, std::vector<float*>* out, Packs* packs,
                bool* embedBf16) {
  if (packs != nullptr) packs->clear();
  if (embedBf16 != nullptr) *embedBf16 = false;
  bool isArray = false;
  uint32_t length = 0;
  const size_t want = layout::SlotCount(d.layers);
  if (napi_is_array(env, array, &isArray) != napi_ok || !isArray || napi_get_array_length(env, array, &length) != napi_ok ||
      length != want) {
    char message[160];
    std::snprintf(message, sizeof(message), "decoder: %s must be an array of %d + %d * layers entries (decoderLayout())",
                  grads ? "grads" : "weights", static_cast<int>(layout::kGlobalSlots),
                  static_cast<int>(layout::kLayerSlots));
    napi_throw_type_error(env, nullptr, message);
    return false;
  }
  out->assign(want, nullptr);
  for (uint32_t i = 0; i < want; i++) {
    napi_value item;
    bool nullish;
    if (napi_get_element(env, array, i, &item) != napi_ok || !IsNullish(env, item, &nullish)) return false;
    if (nullish) {
      if (!grads && layout::SlotRequired(d, i)) {
        char message[120];
        std::snprintf(message, sizeof(message), "decoder: the required weight %s (entry %u) is null",
                      layout::SlotAt(i).name, i);
        napi_throw_type_error(env, nullptr, message);
        return false;
      }
      continue;
    }
    if (!grads) {
      const PackedWeight* pack = AsPackedWeight(env, item);
      if (pack != nullptr) {
        if (!TakePack(env, d, i, pack, packs)) return false;
        continue;
      }
      bool bits = false;
      if (embedBf16 != nullptr && i == layout::kEmbed && napi_is_typedarray(env, item, &bits) == napi_ok && bits) {
        napi_typedarray_type type;
        size_t len;
        void* data;
        if (napi_get_typedarray_info(env, item, &type, &len, &data, nullptr, nullptr) != napi_ok) return false;
        if (type == napi_uint16_array) {
          if (len != layout::SlotSize(d, i)) {
            napi_throw_range_error(env, nullptr, "decoder: the bf16 embedding has the wrong number of elements");
            return false;
          }
          (*out)[i] = static_cast<float*>(data);
          *embedBf16 = true;
          continue;
        }
      }
    }
    void* data;
    size_t len;
    if (!GetTypedArray(env, item, napi_float32_array, &data, &len, "decoder: weights must be Float32Arrays"))
      return false;
    if (len != layout::SlotSize(d, i)) {
      char message[140];
      std::snprintf(message, sizeof(message), "decoder: the %s %s (entry %u) has %zu elements, not %zu",
                    grads ? "gradient" : "weight", layout::SlotAt(i).name, i, len, layout::SlotSize(d, i));
      napi_throw_range_error(env, nullptr, message);
      return false;
    }
    (*out)[i] = static_cast<float*>(data);
  }
  return true;
}

bool GetInts(napi_env env, napi_value value, size_t want, std::vector<int>* out, const char* name, bool nullable) {
  bool nullish;
  if (!IsNullish(env, value, &nullish)) return false;
  if (nullable && nullish) {
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

bool GetLora(napi_env env, Context& c, size_t rows, napi_value weights, napi_value shape, napi_value masks,
             napi_value grads) {
  c.lora.clear();
  bool noWeights, noMasks, noGrads = true;
  if (!IsNullish(env, weights, &noWeights)) return false;
  if (noWeights) return true;
  if (!IsNullish(env, masks, &noMasks) || (grads != nullptr && !IsNullish(env, grads, &noGrads))) return false;
  const Dims& d = c.d;
  const size_t slots = static_cast<size_t>(d.layers) * layout::kProjections;
  void* shapeData;
  size_t shapeLen;
  if (!GetTypedArray(env, shape, napi_float64_array, &shapeData, &shapeLen, "decoder: loraShape must be a Float64Array"))
    return false;
  if (shapeLen != slots * 2) {
    napi_throw_range_error(env, nullptr, "decoder: loraShape must have [scale, rank] per layer and projection");
    return false;
  }
  const double* sh = static_cast<const double*>(shapeData);
  c.lora.assign(slots, LoraSlot{});
  for (size_t i = 0; i < slots; i++) {
    const int proj = static_cast<int>(i % layout::kProjections);
    const int rank = static_cast<int>(sh[2 * i + 1]);
    if (rank <= 0) continue;
    const int in = layout::ProjectionIn(d, proj), out = layout::ProjectionOut(d, proj);
    LoraSlot& l = c.lora[i];
    l.rank = rank;
    l.scale = static_cast<float>(sh[2 * i]);
    float *pa, *pb;
    if (!GetLoraPair(env, weights, i, rank, in, out, &pa, &pb,
                     "decoder: loraWeights must hold lora_A [r, in] and lora_B [out, r] per layer and projection"))
      return false;
    if (pa == nullptr || pb == nullptr) {
      napi_throw_type_error(env, nullptr, "decoder: an adapted projection lacks lora_A or lora_B");
      return false;
    }
    l.a = pa;
    l.b = pb;
    if (!noMasks) {
      napi_value m;
      float* mask;
      if (!Element(env, masks, static_cast<uint32_t>(i), &m,
                   "decoder: loraMasks must have one entry per layer and projection") ||
          !OptionalFloats(env, m, rows * in, &mask, "decoder: a dropout mask must have batch*seqLen*in entries"))
        return false;
      l.mask = mask;
    }
    if (!noGrads &&
        !GetLoraPair(env, grads, i, rank, in, out, &l.da, &l.db,
                     "decoder: loraGrads must hold null or arrays shaped like lora_A and lora_B per layer and projection"))
      return false;
  }
  return true;
}

}  // namespace decoder
}  // namespace prefkit
