// See packed_weight.h.
#include "packed_weight.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "engine.h"
#include "prefkit/napi_util.h"

namespace prefkit {
namespace decoder {
namespace {

const napi_type_tag kTag = {0x707265666b697470ull, 0x61636b6564573136ull};

// An IEEE binary16 as a float (exact: every fp16 value is an fp32 value).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf, NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal: normalise the mantissa.
    int e = -1;
    uint32_t m = mantissa;
    do {
      e++;
      m <<= 1;
    } while ((m & 0x400u) == 0);
    bits = sign | static_cast<uint32_t>(112 - e) << 23 | ((m & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

bool ParseChoice(napi_env env, napi_value v, const char* const* names, int count, int* out, const char* message) {
  char text[16];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, text, sizeof(text), &len) == napi_ok) {
    for (int i = 0; i < count; i++) {
      if (std::strcmp(text, names[i]) == 0) {
        *out = i;
        return true;
      }
    }
  }
  napi_throw_type_error(env, nullptr, message);
  return false;
}

// The source array of a pack call: its data and element count, checked against the dtype.
bool SourceArray(napi_env env, napi_value v, WeightDtype dtype, void** data, size_t* length) {
  const bool half = dtype != WeightDtype::kFloat32;
  return GetTypedArray(env, v, half ? napi_uint16_array : napi_float32_array, data, length,
                       half ? "decoderPackWeight: a 16-bit weight must be a Uint16Array"
                            : "decoderPackWeight: a float32 weight must be a Float32Array");
}

// Packs (or, with `into`, repacks) data [rows, cols] as op(B) = Wᵀ (k = cols, n = rows); false when out of
// memory or the source does not fit the pack.
bool Pack(PackedWeight& w, const void* data, prefkit_packed_b* into) {
  const auto& abi = engine::Abi();
  std::vector<float> widened;
  prefkit_operand b = {data, PREFKIT_F32, 1, w.cols};
  if (w.dtype == WeightDtype::kBfloat16) {
    b.type = PREFKIT_BF16;
  } else if (w.dtype == WeightDtype::kFloat16) {
    // No fp16 arithmetic here: widen once (exact), then pack as fp32 panels or round to bf16.
    const auto* h = static_cast<const uint16_t*>(data);
    widened.resize(static_cast<size_t>(w.rows) * w.cols);
    engine::ParallelFor(widened.size(), [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; i++) widened[i] = HalfToFloat(h[i]);
    });
    b.data = widened.data();
  }
  if (into != nullptr) return abi.repack_b(into, &b) != 0;
  w.packed = abi.pack_b(&b, w.cols, w.rows, w.compute);
  return w.packed != nullptr;
}

void Finalize(napi_env env, void* data, void*) {
  auto* w = static_cast<PackedWeight*>(data);
  if (engine::Attached()) engine::Abi().free_packed_b(w->packed);
  int64_t ignored;
  napi_adjust_external_memory(env, -w->bytes, &ignored);
  delete w;
}

bool SetNumber(napi_env env, napi_value obj, const char* name, double value) {
  napi_value v;
  return napi_create_double(env, value, &v) == napi_ok && napi_set_named_property(env, obj, name, v) == napi_ok;
}

const char* const kDtypes[] = {"float32", "bfloat16", "float16"};
const char* const kComputes[] = {"float32", "bfloat16"};

}  // namespace

const PackedWeight* AsPackedWeight(napi_env env, napi_value value) {
  napi_valuetype type;
  bool tagged = false;
  void* data = nullptr;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, value, &kTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &data) != napi_ok)
    return nullptr;
  return static_cast<const PackedWeight*>(data);
}

napi_value PackWeight(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (!engine::Attached()) {
    napi_throw_error(env, nullptr, "decoder: no engine attached (call attachEngine with @prefkit/core's engineAbi)");
    return nullptr;
  }
  int64_t rows, cols;
  int dtype, compute;
  if (argc != 5 || !GetInt(env, argv[1], &rows, "decoderPackWeight: rows must be an int32 > 0") ||
      !GetInt(env, argv[2], &cols, "decoderPackWeight: cols must be an int32 > 0") ||
      !ParseChoice(env, argv[3], kDtypes, 3, &dtype, "decoderPackWeight: dtype must be float32, bfloat16 or float16") ||
      !ParseChoice(env, argv[4], kComputes, 2, &compute, "decoderPackWeight: compute must be float32 or bfloat16"))
    return nullptr;
  auto w = PackedWeight{};
  w.rows = static_cast<int>(rows);
  w.cols = static_cast<int>(cols);
  w.dtype = static_cast<WeightDtype>(dtype);
  w.compute = compute == 1 ? PREFKIT_BF16 : PREFKIT_F32;
  void* data;
  size_t length;
  if (!SourceArray(env, argv[0], w.dtype, &data, &length)) return nullptr;
  if (rows <= 0 || cols <= 0 || length != static_cast<size_t>(rows * cols)) {
    napi_throw_range_error(env, nullptr, "decoderPackWeight: the weight must have rows*cols elements");
    return nullptr;
  }
  if (!Pack(w, data, nullptr)) {
    napi_throw_error(env, nullptr, "decoderPackWeight: out of memory");
    return nullptr;
  }
  w.source = data;
  w.bytes = engine::Abi().packed_b_bytes(w.packed);
  auto* owned = new PackedWeight(w);
  napi_value result;
  int64_t ignored;
  if (napi_create_external(env, owned, Finalize, nullptr, &result) != napi_ok ||
      napi_type_tag_object(env, result, &kTag) != napi_ok) {
    engine::Abi().free_packed_b(owned->packed);
    delete owned;
    napi_throw_error(env, nullptr, "decoderPackWeight: napi_create_external failed");
    return nullptr;
  }
  napi_adjust_external_memory(env, owned->bytes, &ignored);
  return result;
}

napi_value RepackWeight(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  auto* w = argc == 2 ? const_cast<PackedWeight*>(AsPackedWeight(env, argv[0])) : nullptr;
  if (w == nullptr) {
    napi_throw_type_error(env, nullptr, "decoderRepackWeight expects a decoderPackWeight handle and the weight");
    return nullptr;
  }
  void* data;
  size_t length;
  if (!SourceArray(env, argv[1], w->dtype, &data, &length)) return nullptr;
  if (length != static_cast<size_t>(w->rows) * w->cols || !Pack(*w, data, w->packed)) {
    napi_throw_range_error(env, nullptr, "decoderRepackWeight: the weight does not fit the pack (another shape)");
    return nullptr;
  }
  w->source = data;
  return nullptr;
}

napi_value UnpackWeight(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr));
  const PackedWeight* w = argc == 1 ? AsPackedWeight(env, arg) : nullptr;
  if (w == nullptr || w->dtype != WeightDtype::kBfloat16) {
    napi_throw_type_error(env, nullptr, "decoderUnpackWeight expects the handle of a packed bfloat16 weight");
    return nullptr;
  }
  const size_t count = static_cast<size_t>(w->rows) * w->cols;
  void* data;
  napi_value buffer, result;
  CHECK_NAPI(env, napi_create_arraybuffer(env, count * sizeof(uint16_t), &data, &buffer));
  if (engine::Abi().unpack_b(w->packed, data, PREFKIT_BF16, 1, w->cols) == 0) {
    napi_throw_error(env, nullptr, "decoderUnpackWeight: the pack does not hold bf16 values");
    return nullptr;
  }
  CHECK_NAPI(env, napi_create_typedarray(env, napi_uint16_array, count, buffer, 0, &result));
  return result;
}

napi_value PackedInfo(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr));
  const PackedWeight* w = argc == 1 ? AsPackedWeight(env, arg) : nullptr;
  if (w == nullptr) {
    napi_throw_type_error(env, nullptr, "decoderPackedInfo expects a decoderPackWeight handle");
    return nullptr;
  }
  napi_value result, dtype, compute;
  CHECK_NAPI(env, napi_create_object(env, &result));
  CHECK_NAPI(env, napi_create_string_utf8(env, kDtypes[static_cast<int>(w->dtype)], NAPI_AUTO_LENGTH, &dtype));
  CHECK_NAPI(env, napi_create_string_utf8(env, kComputes[w->compute == PREFKIT_BF16 ? 1 : 0], NAPI_AUTO_LENGTH,
                                          &compute));
  if (!SetNumber(env, result, "rows", w->rows) || !SetNumber(env, result, "cols", w->cols) ||
      !SetNumber(env, result, "bytes", static_cast<double>(w->bytes)))
    return nullptr;
  CHECK_NAPI(env, napi_set_named_property(env, result, "dtype", dtype));
  CHECK_NAPI(env, napi_set_named_property(env, result, "compute", compute));
  return result;
}

}  // namespace decoder
}  // namespace prefkit
